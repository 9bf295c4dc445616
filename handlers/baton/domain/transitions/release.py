"""Success: a job is done for good. Count it, release its dependents, record the table it wrote.

A dependent becomes READY exactly once, inside the transaction that records the
last of its upstreams finishing (invariant 3). A job with more dependents than one
commit may update releases them in key order, `limit` per transaction: the job's
`release_cursor` says how far it got, so each step applies exactly once (invariant 9).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from baton.domain.records import CatalogEntry, Continuation, JobRecord, JobStats, JobStatus, RunRecord
from baton.domain.transaction import RunTransaction
from baton.domain.transitions import pools


def succeed(
    tx: RunTransaction, run: RunRecord, job: JobRecord, now: dt.datetime, limit: int
) -> tuple[JobRecord, RunRecord, list[JobRecord], Continuation | None]:
    """The job SUCCEEDED: returns it, its run's new counters, the dependents it released (submit after commit),
    and, when it has more than `limit` dependents, the continuation that releases the rest."""
    job = replace(job, status=JobStatus.SUCCEEDED, finished_at=now, error=None, error_reason=None, pending_checks=0)
    run = replace(run, open_jobs=run.open_jobs - 1, succeeded_jobs=run.succeeded_jobs + 1)
    released, cursor = _release(tx, job, None, now, limit)
    job = replace(job, release_cursor=cursor)
    record_write(tx, job, now)
    return job, run, released, _continuation(job, cursor)


def continue_release(
    tx: RunTransaction, item: Continuation, now: dt.datetime, limit: int
) -> tuple[list[JobRecord], Continuation | None]:
    """The next `limit` dependents of a job whose release did not fit in one commit. A message that is not the
    next step (a redelivery, or a job retried since) changes nothing."""
    assert item.job_key is not None
    job = tx.get_job(item.run_id, item.job_key)
    if job is None or job.status != JobStatus.SUCCEEDED or job.attempt != item.attempt or job.release_cursor != item.after:
        return [], None
    if item.after is None:
        return [], None  # fully released already
    run = tx.get_run(item.run_id)
    if run is None or run.status.terminal:
        return [], None
    released, cursor = _release(tx, job, item.after, now, limit)
    job = replace(job, release_cursor=cursor)
    tx.put_job(job)
    return released, _continuation(job, cursor)


def _release(
    tx: RunTransaction, job: JobRecord, after: str | None, now: dt.datetime, limit: int
) -> tuple[list[JobRecord], str | None]:
    """One bounded step: count `job` off each of the next `limit` dependents; those with nothing left become READY
    (or QUEUED, when their pool is full).

    Returns the released ones and the cursor to continue after (None when every dependent is done).
    """
    keys = tx.get_dependents(job.run_id, job.job_key, after=after, limit=limit + 1)
    more = len(keys) > limit
    keys = keys[:limit]
    released: list[JobRecord] = []
    for dependent in tx.get_jobs(job.run_id, keys):
        if dependent.status != JobStatus.PENDING:
            continue
        left = dependent.pending_upstreams - 1
        if left == 0:
            dependent = pools.admit(tx, replace(dependent, pending_upstreams=0, status=JobStatus.READY, ready_at=now), now)
            if dependent.status == JobStatus.READY:
                released.append(dependent)
        else:
            dependent = replace(dependent, pending_upstreams=left)
        tx.put_job(dependent)
    return released, (keys[-1] if more else None)


def _continuation(job: JobRecord, cursor: str | None) -> Continuation | None:
    if cursor is None:
        return None
    return Continuation("release", job.run_id, job_key=job.job_key, attempt=job.attempt, after=cursor)


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
            table_rows=stats.table_rows,
            table_bytes=stats.table_bytes,
            upstream_tables=stats.referenced_tables,
        )
    )
