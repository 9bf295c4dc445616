"""Submission recorded: BigQuery holds the jobs, so READY becomes SUBMITTED."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from baton.domain.records import JobStatus
from baton.domain.transaction import RunTransaction


@dataclass
class Marked:
    moved: int = 0  # jobs that went from READY to SUBMITTED
    # BigQuery job IDs of jobs a cancel reached between their release and this mark: BigQuery now
    # holds them, and the cancel may have asked to stop them before they existed. Cancel them again.
    cancelled: list[str] = field(default_factory=list)


def mark_submitted(tx: RunTransaction, run_id: str, submitted: Sequence[tuple[str, int]], now: dt.datetime) -> Marked:
    """READY -> SUBMITTED once BigQuery holds the jobs: (job key, attempt) pairs, read in one go.

    A fast job's completion may have been recorded first: then only the submission
    time is filled in, so reports still show when the job went out. A job found
    CANCELLED is handed back for BigQuery to cancel (see service/submission.py).
    """
    jobs = {job.job_key: job for job in tx.get_jobs(run_id, [key for key, _ in submitted])}
    marked = Marked()
    for key, attempt in submitted:
        job = jobs.get(key)
        if job is None or job.attempt != attempt:
            continue
        if job.status == JobStatus.READY:
            tx.put_job(replace(job, status=JobStatus.SUBMITTED, submitted_at=now))
            marked.moved += 1
        elif job.status == JobStatus.CANCELLED and job.bigquery_job_id:
            marked.cancelled.append(job.bigquery_job_id)
        elif job.submitted_at is None and job.status != JobStatus.PENDING:
            tx.put_job(replace(job, submitted_at=now))
    return marked
