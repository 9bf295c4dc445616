"""Retrying a finished run: its FAILED, SKIPPED and CANCELLED jobs as their next attempt, in the same run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace

from baton.domain.naming import bigquery_job_id
from baton.domain.records import JobRecord, JobStatus, RunRecord, RunStatus
from baton.domain.transaction import RunTransaction
from baton.domain.transitions.pools import waiting_status

RETRIED_STATUSES = frozenset({JobStatus.FAILED, JobStatus.SKIPPED, JobStatus.CANCELLED})
RETRYABLE_RUN_STATUSES = frozenset({RunStatus.FAILED, RunStatus.CANCELLED})


def plan_retry(environment: str, jobs: Sequence[JobRecord], now: dt.datetime) -> list[JobRecord]:
    """Every FAILED, SKIPPED or CANCELLED job of a finished run as its next attempt.

    A job is READY when all its upstreams already SUCCEEDED, else PENDING on the
    ones that did not; those are all retried too, so each will release it once.
    """
    status = {job.job_key: job.status for job in jobs}
    planned = []
    for job in jobs:
        if job.status not in RETRIED_STATUSES:
            continue
        attempt = job.attempt + 1
        waiting = sum(1 for upstream in job.spec.needs if status.get(upstream) != JobStatus.SUCCEEDED)
        planned.append(
            JobRecord(
                run_id=job.run_id,
                job_key=job.job_key,
                status=JobStatus.PENDING if waiting else waiting_status(job.spec),
                attempt=attempt,
                pending_upstreams=waiting,
                spec=job.spec,
                bigquery_job_id=bigquery_job_id(environment, job.run_id, job.job_key, attempt),
                ready_at=None if waiting else now,
            )
        )
    return planned


def apply_retry(tx: RunTransaction, run_id: str, planned: Sequence[JobRecord], reopen: bool) -> RunRecord | None:
    """Write (part of) a retry plan; with `reopen`, put the run back to RUNNING with its counters fixed.

    While the run stays finished its jobs are inert, so a plan too large for one commit
    is written in several and the run reopened in the last. A job is only written if it
    is still at the attempt the plan was made from, so repeating a crashed retry is safe.
    Returns None when the run is not (any more) FAILED or CANCELLED.
    """
    run = tx.get_run(run_id)
    if run is None or run.status not in RETRYABLE_RUN_STATUSES:
        return None
    current = {job.job_key: job for job in tx.get_jobs(run_id, [job.job_key for job in planned])}
    for job in planned:
        before = current.get(job.job_key)
        if before is not None and before.status in RETRIED_STATUSES and before.attempt == job.attempt - 1:
            tx.put_job(job)
    if reopen:
        # Every job that did not succeed is open again; succeeded_jobs did not move while the run was finished.
        run = replace(
            run,
            status=RunStatus.RUNNING,
            open_jobs=run.total_jobs - run.succeeded_jobs,
            failed_jobs=0,
            skipped_jobs=0,
            cancelled_jobs=0,
            finished_at=None,
        )
        tx.put_run(run)
    return run
