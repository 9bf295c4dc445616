"""Success: a job is done for good. Count it, release its dependents, record the table it wrote.

A dependent becomes READY exactly once, inside the transaction that records the
last of its upstreams finishing (invariant 3).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from baton.domain.records import CatalogEntry, JobRecord, JobStats, JobStatus, RunRecord
from baton.domain.transaction import RunTransaction


def succeed(tx: RunTransaction, run: RunRecord, job: JobRecord, now: dt.datetime) -> tuple[JobRecord, RunRecord, list[JobRecord]]:
    """The job SUCCEEDED: returns it, its run's new counters, and the dependents it released (submit after commit)."""
    job = replace(job, status=JobStatus.SUCCEEDED, finished_at=now, error=None, error_reason=None, pending_checks=0)
    run = replace(run, open_jobs=run.open_jobs - 1, succeeded_jobs=run.succeeded_jobs + 1)
    released: list[JobRecord] = []
    for dependent in tx.get_jobs(job.run_id, tx.get_dependents(job.run_id, job.job_key)):
        if dependent.status != JobStatus.PENDING:
            continue
        left = dependent.pending_upstreams - 1
        if left == 0:
            dependent = replace(dependent, pending_upstreams=0, status=JobStatus.READY, ready_at=now)
            released.append(dependent)
        else:
            dependent = replace(dependent, pending_upstreams=left)
        tx.put_job(dependent)
    record_write(tx, job, now)
    return job, run, released


def record_write(tx: RunTransaction, job: JobRecord, now: dt.datetime) -> None:
    """Upsert the catalog row of the table the job wrote, unless a later write is already recorded.

    DML scripts name no destination, so they leave no row.
    """
    stats = job.stats or JobStats()
    table = stats.destination_table or job.spec.destination
    if table is None or job.bigquery_job_id is None:
        return
    written_at = stats.end_time or now
    current = tx.get_catalog(table)
    if current is not None and current.written_at > written_at:
        return
    tx.put_catalog(
        CatalogEntry(
            table_ref=table,
            run_id=job.run_id,
            job_key=job.job_key,
            bigquery_job_id=job.bigquery_job_id,
            written_at=written_at,
            rows_affected=stats.rows_affected,
            bytes_processed=stats.total_bytes_processed,
        )
    )
