"""Run queues: how many runs of a queue may be RUNNING at once, who waits, and who starts when a run ends.

A run names its queue (its manifest's name, or `backfill:<id>`) and the queue's limit (1 for a manifest's
`concurrency: queue` or `skip`, None for `allow`, `max_active_runs` for a backfill). Admission happens in the
transaction that activates the run, and a run's end starts the oldest QUEUED runs of its queue in the
transaction that records that end, so no slot is given twice or left unused and nothing polls. Only the run
rows change here (a queued run's jobs were written READY/PENDING when it was created), so the commit stays
small whatever the size of the runs. Every path that ends a run calls `on_run_end`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from baton.domain.backfill import BackfillRecord, BackfillStatus, backfill_status
from baton.domain.records import RunRecord, RunStatus
from baton.domain.run_events import backfill_event, run_event
from baton.domain.transaction import RunTransaction
from baton.domain.transitions.run_timeout import started_now

# Queued runs one end (or a resume) starts at most; an unlimited queue with more waiting is filled by further calls.
FILL_BATCH = 50


class Admission(StrEnum):
    RUNNING = "RUNNING"
    QUEUED = "QUEUED"
    REFUSED = "REFUSED"  # the queue is full and the start asked to be refused (`concurrency: skip`) or paused


@dataclass(frozen=True)
class Admitted:
    outcome: Admission
    run: RunRecord
    blocking: RunRecord | None = None  # a refused start: the run it found RUNNING
    paused: bool = False  # a refused start: the manifest is paused


@dataclass
class QueueEnd:
    """What a run's end did to its queue: the queued runs it started, and its backfill if that ended too."""

    started: list[RunRecord] = field(default_factory=list)
    backfill: BackfillRecord | None = None


def admit(
    tx: RunTransaction, run_id: str, now: dt.datetime, *, refuse_when_full: bool = False, queue_when_paused: bool = True
) -> Admitted | None:
    """A run about to run (CREATING, or reopened by a retry) becomes RUNNING if its queue has room and nobody
    waits ahead of it, else QUEUED, or is refused (left as it is, for the caller to close). None: no such run,
    or it has ended meanwhile."""
    run = tx.get_run(run_id)
    if run is None or run.status.terminal:
        return None
    if run.queue is None:
        return _put(tx, Admission.RUNNING, run, now)
    if tx.manifest_paused(run.manifest_name):
        if queue_when_paused:
            return _put(tx, Admission.QUEUED, run, now)
        return Admitted(Admission.REFUSED, run, paused=True)
    ahead = [other for other in _others(tx, run, RunStatus.QUEUED) if other.run_id != run.run_id]
    running = [] if run.queue_limit is None else _others(tx, run, RunStatus.RUNNING)
    running = [other for other in running if other.run_id != run.run_id]
    if (run.queue_limit is None or len(running) < run.queue_limit) and not ahead:
        return _put(tx, Admission.RUNNING, run, now)
    if refuse_when_full:
        return Admitted(Admission.REFUSED, run, blocking=running[0] if running else ahead[0])
    return _put(tx, Admission.QUEUED, run, now)


def _others(tx: RunTransaction, run: RunRecord, status: RunStatus) -> list[RunRecord]:
    assert run.queue is not None
    limit = 1 if status == RunStatus.QUEUED else (run.queue_limit or 0) + 1
    return tx.queue_runs(run.queue, status, limit + 1)


def _put(tx: RunTransaction, outcome: Admission, run: RunRecord, now: dt.datetime) -> Admitted:
    run = replace(run, status=RunStatus(outcome), started_at=now if outcome == Admission.RUNNING else None)
    if outcome == Admission.RUNNING:
        run = started_now(run, now)
    tx.put_run(run)
    return Admitted(outcome, run)


def fill(tx: RunTransaction, queue: str, now: dt.datetime) -> list[RunRecord]:
    """Start the oldest QUEUED runs of `queue` while it has room; the runs started. Nothing starts while the
    manifest is paused or the backfill has ended (cancelled)."""
    queued = tx.queue_runs(queue, RunStatus.QUEUED, FILL_BATCH)
    if not queued or tx.manifest_paused(queued[0].manifest_name):
        return []
    backfill_id = queued[0].backfill_id
    if backfill_id is not None:
        backfill = tx.get_backfill(backfill_id)
        if backfill is None or backfill.status.terminal:
            return []
    limit = queued[0].queue_limit
    room = len(queued) if limit is None else limit - len(tx.queue_runs(queue, RunStatus.RUNNING, limit))
    started = [started_now(replace(run, status=RunStatus.RUNNING, started_at=now), now) for run in queued[: max(0, room)]]
    for run in started:
        tx.put_run(run)
    return started


def on_run_end(tx: RunTransaction, run: RunRecord, now: dt.datetime) -> QueueEnd:
    """A run has ended (any way: succeeded, failed, cancelled, repaired): hand its slot on, in the same transaction."""
    end = QueueEnd()
    if run.queue is None or not run.status.terminal:
        return end
    end.started = fill(tx, run.queue, now)
    if run.backfill_id is not None:
        end.backfill = finish_backfill_if_done(tx, run.backfill_id, now)
    return end


def reopen_backfill(tx: RunTransaction, backfill_id: str) -> BackfillRecord | None:
    """A run of an ended backfill runs again: the backfill is RUNNING until its runs have all ended again (then
    `finish_backfill_if_done` decides its outcome anew). The backfill, if it was reopened now."""
    backfill = tx.get_backfill(backfill_id)
    if backfill is None or not backfill.status.terminal:
        return None
    backfill = replace(backfill, status=BackfillStatus.RUNNING, finished_at=None)
    tx.put_backfill(backfill)
    return backfill


def finish_backfill_if_done(tx: RunTransaction, backfill_id: str, now: dt.datetime) -> BackfillRecord | None:
    """The backfill ends once every date's run is written and ended; the backfill, if it ended now."""
    backfill = tx.get_backfill(backfill_id)
    if backfill is None or backfill.status.terminal:
        return None
    runs = tx.backfill_runs(backfill_id)
    if len(runs) < backfill.total_runs or not all(run.status.terminal for run in runs):
        return None
    # Every date's run is written by now: a start that stopped after its last one has nothing left to do either.
    backfill = replace(backfill, status=backfill_status([str(run.status) for run in runs]), finished_at=now, starting=False)
    tx.put_backfill(backfill)
    return backfill


def started_event(run: RunRecord, now: dt.datetime) -> dict[str, Any]:
    """run.started of a run that waited in its queue: `from_queue` tells the committer to submit its jobs."""
    return {**run_event("run.started", run, now), "from_queue": True}


def end_events(tx: RunTransaction, run: RunRecord, now: dt.datetime) -> list[dict[str, Any]]:
    """`on_run_end` inside the transaction that ended `run`, as the run events it produces (for the outbox):
    run.started of each queued run it started (service/continuations.start_dequeued submits their jobs after
    the commit) and backfill.finished if it was a backfill's last."""
    end = on_run_end(tx, run, now)
    events = [started_event(started, now) for started in end.started]
    if end.backfill is not None:
        events.append(backfill_event("backfill.finished", end.backfill, run, now))
    return events
