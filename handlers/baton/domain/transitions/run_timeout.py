"""A run's own timeout (`run_timeout:` in the manifest): past its deadline, the run is cancelled.

The deadline is set when the run is planned (and again when it is retried) and lives on
the run's row, where an index holds it only while the run is RUNNING
(spanner_schema/0014_hold_and_run_timeout.sql): the reconciler's existing pass reads
the runs past it and cancels each through the cancel transition, so a timed-out run
ends like a cancelled one (every open job CANCELLED, BigQuery asked to stop them),
with the reason recorded and run.timed_out published before run.cancelled.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace

from baton.domain.records import NewRun, RunRecord, RunStatus
from baton.domain.transaction import RunTransaction
from baton.domain.transitions.cancel import CancelResult, cancel_run

TIMED_OUT_EVENT = "run.timed_out"


def with_run_timeout(plan: NewRun, timeout_seconds: int | None) -> NewRun:
    """The planned run with its timeout and the deadline it gives, counted from the run's creation (and again from
    when it starts, if it waits QUEUED first: `started_now`)."""
    if timeout_seconds is None:
        return plan
    run = plan.run
    assert run.created_at is not None, "a planned run has its creation time"
    deadline = run.created_at + dt.timedelta(seconds=timeout_seconds)
    return replace(plan, run=replace(run, timeout_seconds=timeout_seconds, deadline=deadline))


def rearmed(run: RunRecord, now: dt.datetime) -> RunRecord:
    """A run reopened by a retry: a full timeout from now, not held, no end reason left from before."""
    return replace(started_now(run, now), held_at=None, hold_reason=None, end_reason=None)


def started_now(run: RunRecord, now: dt.datetime) -> RunRecord:
    """A run that becomes RUNNING now (from its queue, or again by a retry): its run_timeout counts from here,
    so time spent QUEUED behind another run does not count against it."""
    deadline = now + dt.timedelta(seconds=run.timeout_seconds) if run.timeout_seconds else None
    return replace(run, deadline=deadline)


def past_deadline(run: RunRecord, now: dt.datetime) -> bool:
    return run.status == RunStatus.RUNNING and run.deadline is not None and run.deadline < now


def timeout_reason(run: RunRecord) -> str:
    return f"timeout: the run ran past its run_timeout of {duration_text(run.timeout_seconds or 0)}"


def time_out_run(tx: RunTransaction, run_id: str, job_keys: Sequence[str], now: dt.datetime) -> CancelResult:
    """The first step of a run's timeout: if it is still RUNNING past its deadline (not finished, cancelled
    or retried with a new deadline since the index was read), cancel it with the reason; else change nothing.
    Later chunks of its open jobs are closed by `cancel_run` on the then-CANCELLED run, as for any cancel."""
    run = tx.get_run(run_id)
    if run is None or not past_deadline(run, now):
        return CancelResult(run=run, changed=False)
    return cancel_run(tx, run_id, job_keys, now, reason=timeout_reason(run))


def duration_text(seconds: int) -> str:
    """90 -> 90s, 1800 -> 30m, 7200 -> 2h: as a manifest writes it."""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
