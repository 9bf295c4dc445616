"""Failure propagation: what a failed job does to its downstream. One rule for events and repairs."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from baton.domain.records import JobRecord, JobStatus, RunRecord
from baton.domain.transaction import RunTransaction

# An upstream in one of these will never succeed in this attempt of the run: its PENDING dependents are skipped.
BLOCKING = frozenset({JobStatus.FAILED, JobStatus.SKIPPED, JobStatus.CANCELLED})


def skipped(job: JobRecord, failed_upstream: str, now: dt.datetime) -> JobRecord:
    """A PENDING job that cannot run because `failed_upstream` (or something above it) did not succeed."""
    return replace(job, status=JobStatus.SKIPPED, error=f"upstream '{failed_upstream}' failed", finished_at=now)


def skip_downstream(tx: RunTransaction, run: RunRecord, failed_key: str, now: dt.datetime) -> tuple[RunRecord, list[str]]:
    """Mark every PENDING job downstream of a failure SKIPPED (none of them can have been released)."""
    keys: list[str] = []
    frontier = [failed_key]
    while frontier:
        key = frontier.pop()
        for dependent in tx.get_jobs(run.run_id, tx.get_dependents(run.run_id, key)):
            if dependent.status != JobStatus.PENDING:
                continue
            tx.put_job(skipped(dependent, failed_key, now))
            keys.append(dependent.job_key)
            frontier.append(dependent.job_key)
    run = replace(run, open_jobs=run.open_jobs - len(keys), skipped_jobs=run.skipped_jobs + len(keys))
    return run, keys
