"""Pools: named concurrency limits, taken and freed inside the transactions that move jobs. Nothing polls.

The slot rule, in one place: a job of a pool holds a slot while it is READY or SUBMITTED, that is
from its release until BigQuery reports its job done. A retry's delay keeps the slot (the job is
READY meanwhile, and its next attempt goes out without queueing again); data checks do not hold
it (checks are separate queries, and a job that starts its checks has freed its slot). A job of a
pool whose upstreams are done but whose pool is full waits QUEUED, with an entry in the pool's
queue (higher priority first, then the older). Every transition out of READY or SUBMITTED (success,
checks, failure, timeout, a healed lost event, a refusal, a cancel) calls `moved`, which frees
the slot and hands it, in the same transaction, to the head of the queue, whatever its run. A
skipped job was PENDING, so it never held one; a cancelled QUEUED job leaves the queue.

Jobs without a pool, and pools the environment does not configure, are not limited, and these
functions read nothing for them: the unpooled completion path costs what it did.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace

from baton.domain.limits import POOL_RELEASES_PER_COMMIT
from baton.domain.records import JobRecord, JobStatus, PoolUsage, QueueEntry, RunRecord, RunStatus
from baton.domain.specs import JobSpec
from baton.domain.transaction import RunTransaction

HOLDS_SLOT = frozenset({JobStatus.READY, JobStatus.SUBMITTED})

Released = list[tuple[RunRecord, JobRecord]]  # jobs a freed slot went to, with their runs: submit them after commit


def waiting_status(spec: JobSpec) -> JobStatus:
    """What a plan (start, retry, rerun) makes of a job whose upstreams are done: a pooled one waits for `admit`."""
    return JobStatus.QUEUED if spec.pool is not None else JobStatus.READY


def entry_of(job: JobRecord) -> QueueEntry:
    """The job's queue entry: its key is fixed by the job (queued at its ready time), so writing it twice is one entry."""
    assert job.spec.pool is not None and job.ready_at is not None
    return QueueEntry(job.spec.pool, job.spec.priority, job.ready_at, job.run_id, job.job_key, job.attempt)


def admit(tx: RunTransaction, job: JobRecord, now: dt.datetime) -> JobRecord:
    """A job whose upstreams are done: READY holding a slot if its pool has room and nobody queues, else QUEUED.

    `job` is READY (just released) or QUEUED (planned so, or healed); the caller writes what this returns.
    Idempotent: a QUEUED job admitted again keeps its one entry.
    """
    pool = tx.get_pool(job.spec.pool) if job.spec.pool is not None else None
    if pool is None:
        return job if job.status != JobStatus.QUEUED else replace(job, status=JobStatus.READY)
    queued = replace(job, status=JobStatus.QUEUED, ready_at=job.ready_at or now)
    if pool.room > 0:
        head = tx.queue_head(pool.name, 1)
        if not head or head[0] == entry_of(queued):
            tx.put_pool(replace(pool, in_use=pool.in_use + 1))
            if job.status == JobStatus.QUEUED:
                tx.delete_queue_entry(entry_of(queued))
            return replace(queued, status=JobStatus.READY, ready_at=now)
    tx.put_queue_entry(entry_of(queued))
    return queued


def admit_waiting(tx: RunTransaction, run_id: str, job_keys: Sequence[str], now: dt.datetime) -> list[JobRecord]:
    """Admit the QUEUED ones among `job_keys` of a RUNNING run (after a start, retry or rerun); returns those now READY."""
    run = tx.get_run(run_id)
    if run is None or run.status != RunStatus.RUNNING:
        return []
    ready = []
    for job in tx.get_jobs(run_id, job_keys):
        if job.status != JobStatus.QUEUED:
            continue
        admitted = admit(tx, job, now)
        if admitted != job:
            tx.put_job(admitted)
        if admitted.status == JobStatus.READY:
            ready.append(admitted)
    return ready


def recount(tx: RunTransaction, pool_name: str, drift: int) -> PoolUsage | None:
    """The pool's slots in use less `drift`, the slots counted beyond the jobs that hold one (read at one instant
    before this transaction: every move since changed the count and the holders alike, so the difference is still
    `drift`). A safety net against a slot leaked by a bug or a hand-edited row: a leak in a full pool would keep
    its queue waiting for good. Returns the pool as written, None if there is nothing to do."""
    pool = tx.get_pool(pool_name)
    if pool is None or drift == 0:
        return None
    fixed = replace(pool, in_use=max(pool.in_use - drift, 0))
    tx.put_pool(fixed)
    return fixed


def moved(tx: RunTransaction, before: JobRecord, after: JobRecord, now: dt.datetime) -> Released:
    """The hook every transition of a job calls: a slot given up is handed on; a QUEUED job that ends leaves the queue."""
    if before.spec.pool is None:
        return []
    return moved_many(tx, [(before, after)], now)


def moved_many(tx: RunTransaction, moves: Sequence[tuple[JobRecord, JobRecord]], now: dt.datetime) -> Released:
    """`moved` for many jobs at once (a cancel): every slot freed first, then each pool's queue pumped once, so the
    jobs released stay within POOL_RELEASES_PER_COMMIT per pool however many slots were freed."""
    freed: dict[str, int] = {}
    for before, after in moves:
        name = before.spec.pool
        if name is None:
            continue
        if before.status in HOLDS_SLOT and after.status not in HOLDS_SLOT:
            freed[name] = freed.get(name, 0) + 1
        elif before.status == JobStatus.QUEUED and after.status.terminal:
            tx.delete_queue_entry(entry_of(before))
    released: Released = []
    for name, count in freed.items():
        pool = tx.get_pool(name)
        if pool is None:
            continue
        tx.put_pool(replace(pool, in_use=max(pool.in_use - count, 0)))
        released += pump(tx, name, now)
    return released


def pump(tx: RunTransaction, name: str, now: dt.datetime, limit: int = POOL_RELEASES_PER_COMMIT) -> Released:
    """Hand the pool's free slots to the head of its queue, at most `limit`; entries whose job no longer waits are dropped.

    A job is released once: its entry goes in the transaction that makes it READY, and a job no longer
    QUEUED at the entry's attempt (cancelled, retried since) or of a run no longer RUNNING has no claim.
    """
    pool = tx.get_pool(name)
    if pool is None:
        return []
    released: Released = []
    runs: dict[str, RunRecord | None] = {}
    examined = 0
    while pool.room > 0 and len(released) < limit and examined < 4 * limit:
        entries = tx.queue_head(name, min(pool.room, limit - len(released)))
        if not entries:
            break
        for entry in entries:
            examined += 1
            tx.delete_queue_entry(entry)
            if entry.run_id not in runs:
                runs[entry.run_id] = tx.get_run(entry.run_id)
            run = runs[entry.run_id]
            found = tx.get_jobs(entry.run_id, [entry.job_key])
            job = found[0] if found else None
            if run is None or run.status != RunStatus.RUNNING or job is None:
                continue
            if job.status != JobStatus.QUEUED or job.attempt != entry.attempt:
                continue
            job = replace(job, status=JobStatus.READY, ready_at=now)
            tx.put_job(job)
            pool = replace(pool, in_use=pool.in_use + 1)
            released.append((run, job))
    if examined:
        tx.put_pool(pool)
    return released
