"""Repairing a run that is RUNNING with nothing in flight: pure rules over one read-write transaction.

The event path keeps runs consistent on its own; this is the reconciler's safety
net for what it should never see (a release or a finish that did not happen, a
counter that drifted). It only moves jobs forward and recounts the run from its
jobs, so it is safe to repeat and to race with events: a concurrent completion
makes one of the two transactions retry and see the other's result.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from baton.domain.records import JobRecord, JobStatus, RunRecord, RunStatus
from baton.domain.transaction import RunTransaction
from baton.domain.transitions.failure import BLOCKING, skipped
from baton.domain.transitions.finish import recount
from baton.domain.transitions.pools import admit


@dataclass
class Repair:
    run: RunRecord | None
    changed: bool = False
    released: list[JobRecord] = field(default_factory=list)  # submit these after commit
    skipped: list[str] = field(default_factory=list)
    missing_rows: int = 0  # job rows the run counts but the store does not hold: left for an operator

    @property
    def finished(self) -> bool:
        return self.run is not None and self.run.status.terminal


def in_flight(job: JobRecord) -> bool:
    """Released and not finished: READY, SUBMITTED, or any later non-terminal state (CHECKING); QUEUED too, since
    a slot freed in its pool releases it without the reconciler."""
    return job.status != JobStatus.PENDING and not job.status.terminal


def repair_run(tx: RunTransaction, run_id: str, job_keys: list[str], now: dt.datetime, limit: int) -> Repair:
    """Release PENDING jobs whose upstreams all succeeded, skip those behind a failure, recount, finish.

    Does nothing unless the run is RUNNING and none of its jobs is in flight. Writes at
    most `limit` jobs: what is left is found by the next pass, since nothing it changed
    can be undone meanwhile (released jobs are in flight, skipped ones are final).
    """
    run = tx.get_run(run_id)
    if run is None or run.status != RunStatus.RUNNING:
        return Repair(run)
    jobs = {job.job_key: job for job in tx.get_jobs(run_id, job_keys)}
    if any(in_flight(job) for job in jobs.values()):
        return Repair(run)
    if len(jobs) != run.total_jobs:
        return Repair(run, missing_rows=run.total_jobs - len(jobs))
    result = Repair(run)
    # One pass in topological order settles every skip, however deep, since upstreams are decided first.
    for key in topological_order(jobs):
        if len(result.released) + len(result.skipped) >= limit:
            break
        job = jobs[key]
        if job.status != JobStatus.PENDING:
            continue
        upstreams = [jobs.get(up) for up in job.spec.needs]
        failed = next((up.job_key for up in upstreams if up is not None and up.status in BLOCKING), None)
        if failed is not None:
            job = skipped(job, failed, now)
            result.skipped.append(job.job_key)
        elif all(up is not None and up.status == JobStatus.SUCCEEDED for up in upstreams):
            job = admit(tx, replace(job, status=JobStatus.READY, pending_upstreams=0, ready_at=now), now)
            if job.status == JobStatus.READY:
                result.released.append(job)
        else:
            continue
        jobs[key] = job
        tx.put_job(job)
    counted = recount(run, list(jobs.values()), now)
    result.changed = bool(result.released or result.skipped) or counted != run
    if result.changed:
        tx.put_run(counted)
    result.run = counted
    return result


def topological_order(jobs: Mapping[str, JobRecord]) -> list[str]:
    """Upstreams before dependents (Kahn's algorithm, iterative: a 10,000-deep chain does not recurse)."""
    waiting = {key: sum(1 for up in job.spec.needs if up in jobs) for key, job in jobs.items()}
    dependents: dict[str, list[str]] = {key: [] for key in jobs}
    for key, job in jobs.items():
        for up in job.spec.needs:
            if up in dependents:
                dependents[up].append(key)
    ready = deque(key for key, count in waiting.items() if count == 0)
    order: list[str] = []
    while ready:
        key = ready.popleft()
        order.append(key)
        for dependent in dependents[key]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                ready.append(dependent)
    return order
