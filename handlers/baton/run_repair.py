"""Repairing a run that is RUNNING with nothing in flight: pure rules over one read-write transaction.

The event path keeps runs consistent on its own; this is the reconciler's safety
net for what it should never see (a release or a finish that did not happen, a
counter that drifted). It only moves jobs forward and recounts the run from its
jobs, so it is safe to repeat and to race with events: a concurrent completion
makes one of the two transactions retry and see the other's result.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

from baton.engine import JobRecord, JobStatus, RunRecord, RunStatus, RunTransaction

_BLOCKING = {JobStatus.FAILED, JobStatus.SKIPPED, JobStatus.CANCELLED}


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
    """Released and not finished: READY, SUBMITTED, or any later non-terminal state (CHECKING)."""
    return job.status != JobStatus.PENDING and not job.status.terminal


def repair_run(tx: RunTransaction, run_id: str, job_keys: list[str], now: dt.datetime) -> Repair:
    """Release PENDING jobs whose upstreams all succeeded, skip those behind a failure, recount, finish.

    Does nothing unless the run is RUNNING and none of its jobs is in flight.
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
    progress = True
    while progress:  # a skip can make a further job skippable: repeat to a fixed point
        progress = False
        for job in jobs.values():
            if job.status != JobStatus.PENDING:
                continue
            upstreams = [jobs.get(key) for key in job.spec.needs]
            if any(up is not None and up.status in _BLOCKING for up in upstreams):
                failed = next(up.job_key for up in upstreams if up is not None and up.status in _BLOCKING)
                job = replace(job, status=JobStatus.SKIPPED, error=f"upstream '{failed}' did not succeed", finished_at=now)
                result.skipped.append(job.job_key)
            elif all(up is not None and up.status == JobStatus.SUCCEEDED for up in upstreams):
                job = replace(job, status=JobStatus.READY, pending_upstreams=0, ready_at=now)
                result.released.append(job)
            else:
                continue
            jobs[job.job_key] = job
            tx.put_job(job)
            progress = True
    counted = recount(run, list(jobs.values()), now)
    result.changed = bool(result.released or result.skipped) or counted != run
    if result.changed:
        tx.put_run(counted)
    result.run = counted
    return result


def recount(run: RunRecord, jobs: list[JobRecord], now: dt.datetime) -> RunRecord:
    """The run's counters from its jobs; with no open job left, it finishes as the engine would finish it."""
    by_status = {status: sum(1 for job in jobs if job.status == status) for status in JobStatus}
    counted = replace(
        run,
        open_jobs=sum(1 for job in jobs if not job.status.terminal),
        succeeded_jobs=by_status[JobStatus.SUCCEEDED],
        failed_jobs=by_status[JobStatus.FAILED],
        skipped_jobs=by_status[JobStatus.SKIPPED],
        cancelled_jobs=by_status[JobStatus.CANCELLED],
    )
    if counted.open_jobs == 0:
        clean = counted.failed_jobs == counted.skipped_jobs == counted.cancelled_jobs == 0
        counted = replace(counted, status=RunStatus.SUCCEEDED if clean else RunStatus.FAILED, finished_at=now)
    return counted
