"""The one rule for when a run ends and how: nothing open, and SUCCEEDED only if every job succeeded."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import replace

from baton.domain.records import JobRecord, JobStatus, RunRecord, RunStatus


def finish_if_done(run: RunRecord, now: dt.datetime) -> RunRecord:
    """The run ended once no job is open: SUCCEEDED if none failed, was skipped or cancelled, else FAILED."""
    if run.open_jobs > 0 or run.status.terminal:
        return run
    clean = run.failed_jobs == 0 and run.skipped_jobs == 0 and run.cancelled_jobs == 0
    return replace(run, status=RunStatus.SUCCEEDED if clean else RunStatus.FAILED, finished_at=now)


def recount(run: RunRecord, jobs: Iterable[JobRecord], now: dt.datetime) -> RunRecord:
    """The run's counters from its jobs, then the finishing rule: for repairs, when counters may have drifted."""
    statuses = [job.status for job in jobs]
    counted = replace(
        run,
        open_jobs=sum(1 for status in statuses if not status.terminal),
        succeeded_jobs=statuses.count(JobStatus.SUCCEEDED),
        failed_jobs=statuses.count(JobStatus.FAILED),
        skipped_jobs=statuses.count(JobStatus.SKIPPED),
        cancelled_jobs=statuses.count(JobStatus.CANCELLED),
    )
    return finish_if_done(counted, now)
