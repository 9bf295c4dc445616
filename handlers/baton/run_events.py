"""Run events: the stable JSON published on the run-events topic for alerting.

Schema (version 1), every field always present unless marked optional:
  schema_version  1
  type            run.started | run.succeeded | run.failed | run.cancelled | job.failed
  run_id, manifest, manifest_version, environment
  status          the run's status after the event
  counts          {total, open, succeeded, failed, skipped, cancelled}
  time            ISO 8601 UTC
  job             (job.failed only) {key, attempt, bigquery_job_id, error, error_reason}
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from baton.engine import JobRecord, RunRecord, RunStatus

SCHEMA_VERSION = 1
_FINISHED_TYPES = {
    RunStatus.SUCCEEDED: "run.succeeded",
    RunStatus.FAILED: "run.failed",
    RunStatus.CANCELLED: "run.cancelled",
}


def run_event(event_type: str, run: RunRecord, now: dt.datetime, job: JobRecord | None = None) -> dict[str, Any]:
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
    if job is not None:
        event["job"] = {
            "key": job.job_key,
            "attempt": job.attempt,
            "bigquery_job_id": job.bigquery_job_id,
            "error": job.error,
            "error_reason": job.error_reason,
        }
    return event


def finished_event_type(status: RunStatus) -> str:
    return _FINISHED_TYPES[status]
