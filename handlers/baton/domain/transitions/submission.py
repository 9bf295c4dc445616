"""Submission recorded: BigQuery holds the jobs, so READY becomes SUBMITTED."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace

from baton.domain.records import JobStatus
from baton.domain.transaction import RunTransaction


def mark_submitted(tx: RunTransaction, run_id: str, submitted: Sequence[tuple[str, int]], now: dt.datetime) -> int:
    """READY -> SUBMITTED once BigQuery holds the jobs: (job key, attempt) pairs, read in one go.

    A fast job's completion may have been recorded first: then only the submission
    time is filled in, so reports still show when the job went out. Returns how many
    jobs moved to SUBMITTED.
    """
    jobs = {job.job_key: job for job in tx.get_jobs(run_id, [key for key, _ in submitted])}
    moved = 0
    for key, attempt in submitted:
        job = jobs.get(key)
        if job is None or job.attempt != attempt:
            continue
        if job.status == JobStatus.READY:
            tx.put_job(replace(job, status=JobStatus.SUBMITTED, submitted_at=now))
            moved += 1
        elif job.submitted_at is None and job.status != JobStatus.PENDING:
            tx.put_job(replace(job, submitted_at=now))
    return moved
