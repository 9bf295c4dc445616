"""Cancelling a run: open jobs end CANCELLED; the ones BigQuery may hold are handed back to cancel there."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from baton.domain.records import JobStatus, RunRecord, RunStatus
from baton.domain.transaction import RunTransaction


@dataclass
class CancelResult:
    run: RunRecord | None
    changed: bool
    to_cancel_in_bigquery: list[str] = field(default_factory=list)


def cancel_run(tx: RunTransaction, run_id: str, open_job_keys: Sequence[str], now: dt.datetime) -> CancelResult:
    """Stop a run: open jobs become CANCELLED. Released ones are returned for BigQuery to cancel,
    READY included, since a handler may be submitting one right now."""
    run = tx.get_run(run_id)
    if run is None or run.status.terminal:
        return CancelResult(run=run, changed=False)
    to_cancel = []
    cancelled = 0
    for key in open_job_keys:
        job = tx.get_job(run_id, key)
        if job is None or job.status.terminal:
            continue
        if job.status in (JobStatus.READY, JobStatus.SUBMITTED) and job.bigquery_job_id:
            to_cancel.append(job.bigquery_job_id)
        tx.put_job(replace(job, status=JobStatus.CANCELLED, finished_at=now, error="run cancelled"))
        cancelled += 1
    run = replace(
        run,
        status=RunStatus.CANCELLED,
        open_jobs=run.open_jobs - cancelled,
        cancelled_jobs=run.cancelled_jobs + cancelled,
        finished_at=now,
    )
    tx.put_run(run)
    return CancelResult(run=run, changed=True, to_cancel_in_bigquery=to_cancel)
