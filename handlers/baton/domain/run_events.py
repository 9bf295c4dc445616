"""Run events: the stable JSON published on the run-events topic for alerting.

Schema (version 1), every field always present unless marked optional:
  schema_version  1
  event_id        stable and unique: `<run_id>:<type>:<job key>:<attempt>` for job.* events (an attempt
                  fails or warns once), `<run_id>:<type>:<time of the transition>` for run.* events.
                  Delivery is at least once (the outbox below): consumers deduplicate by it. Also the
                  message attribute `event_id`.
  type            run.queued | run.started | run.succeeded | run.failed | run.cancelled | run.retried | run.held |
                  run.released | run.timed_out | job.failed | job.warning | backfill.started | backfill.finished
  run_id, manifest, manifest_version, environment
  status          the run's status after the event
  counts          {total, open, succeeded, failed, skipped, cancelled}
  time            ISO 8601 UTC
  job             (job.* only) {key, attempt, bigquery_job_id, error, error_reason}
  checks          (optional, job.* only) the job's failed data checks:
                  [{name, severity, rows, error, bigquery_job_id}]; job.warning is a job that
                  succeeded with failed `warn` checks
  from_queue      (optional, run.started only) true: the run waited QUEUED and was started by another run's end,
                  a resume or a backfill's progress
  backfill        (backfill.* only) {id, manifest, param, from, to,
                  max_active_runs, total_runs, status}; backfill.started carries the backfill's first run,
                  backfill.finished the run whose end finished it (or the first one, when cancelled)
  reason          (optional: run.held, run.timed_out) why: the operator's --reason, or
                  "timeout: the run ran past its run_timeout of 2h"
  timeout_seconds, deadline  (run.timed_out only) the run's run_timeout and the deadline it gave (ISO 8601 UTC).
                  A timed-out run is cancelled: run.timed_out is followed by run.cancelled (with its cost),
                  written in the same transaction, so every run still ends with exactly one of
                  run.succeeded, run.failed or run.cancelled
  cost            (run.succeeded, run.failed, run.cancelled only) what BigQuery metered for the run,
                  every recorded attempt of its jobs and checks, and its price:
                  {bytes_processed, bytes_billed, slot_ms, amount, currency, pricing}; `pricing` is
                  "on-demand" (amount = bytes_billed / 2^40 * BATON_PRICE_PER_TIB, default 6.25) or
                  "slot-hours" (amount = slot_ms / 3,600,000 * BATON_SLOT_HOUR_PRICE)

Never lost: an event is written to the outbox (table RunEventOutbox) in the same transaction as the
transition it reports, published after the commit and then deleted; what a failed publish or a crash
leaves there, the reconciler publishes. So an event may arrive twice, never not at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from baton.domain.backfill import BackfillRecord
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
    reason: str | None = None,
) -> dict[str, Any]:
    """The event; a run's finishing event carries its cost, priced by `pricing` (default: on demand).
    `reason`: why an operator or a rule acted (run.held, run.timed_out)."""
    event: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "event_id": event_id(event_type, run.run_id, now, job),
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
    if reason is not None:
        event["reason"] = reason
    if event_type == "run.timed_out":
        event["timeout_seconds"] = run.timeout_seconds
        event["deadline"] = run.deadline.astimezone(dt.UTC).isoformat() if run.deadline else None
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


def event_id(event_type: str, run_id: str, now: dt.datetime, job: JobRecord | None = None) -> str:
    """Stable: a transaction that Spanner re-runs computes the same ID (its `now` is fixed before it starts)."""
    if job is not None:
        return f"{run_id}:{event_type}:{job.job_key}:{job.attempt}"
    return f"{run_id}:{event_type}:{now.astimezone(dt.UTC).strftime('%Y%m%dT%H%M%S%fZ')}"


def finished_event_type(status: RunStatus) -> str:
    return _FINISHED_TYPES[status]


def backfill_event(event_type: str, backfill: BackfillRecord, run: RunRecord, now: dt.datetime) -> dict[str, Any]:
    """backfill.started / backfill.finished: the run event of `run` with the backfill's state."""
    event = run_event(event_type, run, now)
    event["backfill"] = {
        "id": backfill.backfill_id,
        "manifest": backfill.manifest_name,
        "param": backfill.param,
        "from": backfill.first_date.isoformat(),
        "to": backfill.last_date.isoformat(),
        "max_active_runs": backfill.max_active_runs,
        "total_runs": backfill.total_runs,
        "status": str(backfill.status),
    }
    return event
