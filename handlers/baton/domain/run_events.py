"""Run events: the stable JSON published on the run-events topic for alerting.

Schema (version 1), every field always present unless marked optional:
  schema_version  1
  type            run.started | run.succeeded | run.failed | run.cancelled | run.retried | job.failed | job.warning
  run_id, manifest, manifest_version, environment
  status          the run's status after the event
  counts          {total, open, succeeded, failed, skipped, cancelled}
  time            ISO 8601 UTC
  job             (job.* only) {key, attempt, bigquery_job_id, error, error_reason}
  checks          (optional, job.* only) the job's failed data checks:
                  [{name, severity, rows, error, bigquery_job_id}]; job.warning is a job that
                  succeeded with failed `warn` checks
  cost            (run.succeeded, run.failed, run.cancelled only) what BigQuery metered for the run,
                  every recorded attempt of its jobs and checks, and its price:
                  {bytes_processed, bytes_billed, slot_ms, amount, currency, pricing}; `pricing` is
                  "on-demand" (amount = bytes_billed / 2^40 * BATON_PRICE_PER_TIB, default 6.25) or
                  "slot-hours" (amount = slot_ms / 3,600,000 * BATON_SLOT_HOUR_PRICE)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from baton.domain.cost import Pricing
from baton.domain.records import CheckRecord, JobRecord, RunRecord, RunStatus

SCHEMA_VERSION = 1
_FINISHED_TYPES = {
    RunStatus.SUCCEEDED: "run.succeeded",
    RunStatus.FAILED: "run.failed",
    RunStatus.CANCELLED: "run.cancelled",
}


def run_event(
    event_type: str,
    run: RunRecord,
    now: dt.datetime,
    job: JobRecord | None = None,
    checks: Sequence[CheckRecord] = (),
    pricing: Pricing | None = None,
) -> dict[str, Any]:
    """The event; a run's finishing event carries its cost, priced by `pricing` (default: on demand)."""
    event: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "type": event_type,
        "run_id": run.run_id,
        "manifest": run.manifest_name,
        "manifest_version": run.manifest_version,
        "environment": run.environment,
        "status": str(run.status),
        "counts": {
            "total": run.total_jobs,
            "open": run.open_jobs,
            "succeeded": run.succeeded_jobs,
            "failed": run.failed_jobs,
            "skipped": run.skipped_jobs,
            "cancelled": run.cancelled_jobs,
        },
        "time": now.astimezone(dt.UTC).isoformat(),
    }
    if event_type in _FINISHED_TYPES.values():
        event["cost"] = (pricing or Pricing()).to_json(run.usage)
    if job is not None:
        event["job"] = {
            "key": job.job_key,
            "attempt": job.attempt,
            "bigquery_job_id": job.bigquery_job_id,
            "error": job.error,
            "error_reason": job.error_reason,
        }
    if checks:
        event["checks"] = [
            {
                "name": check.name,
                "severity": str(check.severity),
                "rows": check.rows,
                "error": check.error,
                "bigquery_job_id": check.bigquery_job_id,
            }
            for check in checks
        ]
    return event


def finished_event_type(status: RunStatus) -> str:
    return _FINISHED_TYPES[status]
