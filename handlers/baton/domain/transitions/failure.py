"""Failure propagation: what a failed job does to its downstream. One rule for events and repairs.

The walk is bounded: one transaction skips at most `limit` jobs and reads at most
`limit` dependents; what is left of the frontier is handed on as a Continuation, so a
failure's cost per transaction follows its out-degree, never the size of its downstream.
Skipping is idempotent (only PENDING jobs move, and each is counted in the transaction
that moves it), so a redelivered step changes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

from baton.domain.records import Continuation, JobRecord, JobStatus, RunRecord
from baton.domain.transaction import RunTransaction
from baton.domain.transitions.finish import finish_if_done

# An upstream in one of these will never succeed in this attempt of the run: its PENDING dependents are skipped.
BLOCKING = frozenset({JobStatus.FAILED, JobStatus.SKIPPED, JobStatus.CANCELLED})

Frontier = list[tuple[str, str | None]]  # (job key whose dependents are still to skip, after which dependent key)


def skipped(job: JobRecord, failed_upstream: str, now: dt.datetime) -> JobRecord:
    """A PENDING job that cannot run because `failed_upstream` (or something above it) did not succeed."""
    return replace(job, status=JobStatus.SKIPPED, error=f"upstream '{failed_upstream}' failed", finished_at=now)


@dataclass
class SkipStep:
    run: RunRecord
    skipped: list[str] = field(default_factory=list)
    continuation: Continuation | None = None


def skip_downstream(tx: RunTransaction, run: RunRecord, failed_key: str, now: dt.datetime, limit: int) -> SkipStep:
    """Start skipping the PENDING jobs downstream of a failure (none of them can have been released)."""
    return _walk(tx, run, [(failed_key, None)], failed_key, now, limit)


def continue_skip(tx: RunTransaction, item: Continuation, now: dt.datetime, limit: int) -> SkipStep | None:
    """The next bounded step of a skip walk; None when the run has ended meanwhile (cancelled, say)."""
    run = tx.get_run(item.run_id)
    if run is None or run.status.terminal or item.cause is None:
        return None
    step = _walk(tx, run, list(item.frontier), item.cause, now, limit)
    step.run = finish_if_done(step.run, now)
    tx.put_run(step.run)
    return step


def _walk(tx: RunTransaction, run: RunRecord, frontier: Frontier, cause: str, now: dt.datetime, limit: int) -> SkipStep:
    step = SkipStep(run)
    budget = limit
    while frontier and budget > 0:
        key, after = frontier.pop()
        keys = tx.get_dependents(run.run_id, key, after=after, limit=budget + 1)
        if len(keys) > budget:  # the rest of this job's dependents comes later
            keys = keys[:budget]
            frontier.append((key, keys[-1]))
        budget -= len(keys)
        for dependent in tx.get_jobs(run.run_id, keys):
            if dependent.status != JobStatus.PENDING:
                continue
            tx.put_job(skipped(dependent, cause, now))
            step.skipped.append(dependent.job_key)
            frontier.append((dependent.job_key, None))
    count = len(step.skipped)
    step.run = replace(run, open_jobs=run.open_jobs - count, skipped_jobs=run.skipped_jobs + count)
    if frontier:
        step.continuation = Continuation("skip", run.run_id, frontier=tuple(frontier), cause=cause)
    return step
