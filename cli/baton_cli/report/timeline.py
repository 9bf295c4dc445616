"""When each job and check of a run was in which phase, read from the timestamps the records keep.

A job's current attempt keeps: `ready_at` (released), `submitted_at` (BigQuery has it),
BigQuery's own `stats.start_time` (running; known once the job finished), `checks_started_at`
(its checks were submitted) and `finished_at`. Earlier attempts keep no times, only their
checks do. Times come from two clocks (Spanner commits, BigQuery's statistics), so each
phase is clamped to start no earlier than the one before it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from baton.domain.records import CheckRecord, CheckStatus, JobRecord


class Phase(StrEnum):
    QUEUED = "queued"  # released, waiting to be submitted (a retry may wait out its backoff here)
    SUBMITTED = "submitted"  # BigQuery has the job and has not reported it running
    RUNNING = "running"  # BigQuery ran it, until Baton recorded its completion
    CHECKING = "checking"  # its data checks were running


PHASE_DESCRIPTION = {
    Phase.QUEUED: "released by its upstreams, waiting to be submitted",
    Phase.SUBMITTED: "in BigQuery, not yet reported running",
    Phase.RUNNING: "running in BigQuery, until its completion event was recorded",
    Phase.CHECKING: "its data checks running",
}


@dataclass(frozen=True)
class Segment:
    phase: Phase
    start: dt.datetime
    end: dt.datetime
    ongoing: bool = False  # still in this phase: `end` is `now`


def job_segments(job: JobRecord, now: dt.datetime) -> list[Segment]:
    """The phases of the job's current attempt, in order; an open job's last phase runs to `now`."""
    released = job.ready_at or job.submitted_at
    started = job.stats.start_time if job.stats is not None else None
    if started is not None and released is not None and started < released:
        started = None  # statistics of an earlier attempt, kept while this one waits
    submitted = job.submitted_at
    if started is not None and submitted is not None and started < submitted:
        submitted = None  # BigQuery ran it before Baton recorded the submission: it was never merely waiting there
    marks = [
        (Phase.QUEUED, job.ready_at),
        (Phase.SUBMITTED, submitted),
        (Phase.RUNNING, started),
        (Phase.CHECKING, job.checks_started_at),
    ]
    return _segments(marks, job.finished_at, now if not job.status.terminal else None)


def check_segments(check: CheckRecord, now: dt.datetime) -> list[Segment]:
    """A check is one phase, from its submission until its verdict was recorded."""
    ongoing = now if check.status == CheckStatus.PENDING else None
    return _segments([(Phase.CHECKING, check.created_at)], check.finished_at, ongoing)


def _segments(
    marks: list[tuple[Phase, dt.datetime | None]], finished: dt.datetime | None, now: dt.datetime | None
) -> list[Segment]:
    known: list[tuple[Phase, dt.datetime]] = []
    for phase, at in marks:
        if at is None:
            continue
        if known and at < known[-1][1]:
            at = known[-1][1]  # the other clock ran a little behind
        known.append((phase, at))
    end = finished or now
    if end is None or not known:
        return []
    segments = []
    for index, (phase, start) in enumerate(known):
        stop = known[index + 1][1] if index + 1 < len(known) else end
        start, stop = min(start, end), min(stop, end)
        if stop > start or (index + 1 == len(known) and finished is None):
            segments.append(Segment(phase, start, stop, ongoing=finished is None and index + 1 == len(known)))
    return segments


def job_seconds(job: JobRecord, now: dt.datetime) -> float:
    """How long the job held up its dependents: from its release until it finished (or until `now`)."""
    start = job.ready_at or job.submitted_at
    end = job.finished_at or (None if job.status.terminal else now)
    if start is None or end is None:
        return 0.0
    return max((end - start).total_seconds(), 0.0)
