"""Run queues in the use cases: admit a new run, hand a finished run's slot on, start what waited.

The rules are in domain/transitions/run_queue.py; this module runs them in the use cases' transactions
and does what follows the commit: submit the roots of the runs that started (continuations.start_dequeued).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from baton import structured_log
from baton.domain.records import JobStatus, NewRun, RunRecord, RunStatus
from baton.domain.run_events import run_event
from baton.domain.transaction import RunTransaction
from baton.domain.transitions.run_queue import Admission, Admitted, admit, fill, started_event
from baton.errors import ManifestPaused, RunInProgress
from baton.service.continuations import admit_planned, start_dequeued, submit_released
from baton.service.dependencies import Dependencies
from baton.service.events import publish_recorded, record


def activate(deps: Dependencies, plan: NewRun, now: dt.datetime, *, refuse_when_full: bool, queue_when_paused: bool) -> RunRecord:
    """A created run (every row written, CREATING) starts, or waits QUEUED, decided in one transaction with the
    other open runs of its queue. A refused start (`concurrency: skip`, or paused with `when_paused: refuse`,
    found only now: a race with another start) closes the run it wrote and raises."""

    def activated(tx: RunTransaction) -> tuple[Admitted | None, list[dict[str, Any]]]:
        admitted = admit(tx, plan.run.run_id, now, refuse_when_full=refuse_when_full, queue_when_paused=queue_when_paused)
        if admitted is None or admitted.outcome == Admission.REFUSED:
            return admitted, []
        kind = "run.started" if admitted.outcome == Admission.RUNNING else "run.queued"
        return admitted, record(tx, [run_event(kind, admitted.run, now)])

    admitted, events = deps.store.transact(activated)
    assert admitted is not None, "a run just created must activate"
    run = admitted.run
    if admitted.outcome == Admission.REFUSED:
        from baton.service.runs import cancel  # the one way to close a run's rows, chunked

        cancel(deps, run.run_id)
        if admitted.paused:
            raise ManifestPaused(run.manifest_name, deps.store.paused().get(run.manifest_name, ""))
        assert admitted.blocking is not None
        raise RunInProgress(run.manifest_name, admitted.blocking.run_id)
    structured_log.info(
        "run started" if run.status == RunStatus.RUNNING else "run queued",
        run_id=run.run_id,
        manifest=run.manifest_name,
        jobs=run.total_jobs,
        version=run.manifest_version,
        queue=run.queue,
    )
    publish_recorded(deps, events)
    if run.status == RunStatus.RUNNING:
        submit_released(deps, run, [job for job in plan.jobs if job.status == JobStatus.READY])
        admit_planned(deps, run, plan.jobs)  # its pooled roots: a slot, or a place in their pool's queue
    return run


def refuse_early(deps: Dependencies, manifest: str, queue_when_paused: bool, refuse_when_full: bool) -> None:
    """The refusals a start can give before writing anything (the start's transaction decides again)."""
    paused = deps.store.paused()
    if manifest in paused and not queue_when_paused:
        raise ManifestPaused(manifest, paused[manifest])
    if refuse_when_full and manifest not in paused:
        running = deps.store.queue_runs(manifest, RunStatus.RUNNING, 1)
        if running:
            raise RunInProgress(manifest, running[0].run_id)


def fill_queue(deps: Dependencies, queue: str) -> list[RunRecord]:
    """Start what waits in `queue` while it has room (after a resume); the runs started."""
    started: list[RunRecord] = []
    while True:
        now = deps.clock()

        def filled(tx: RunTransaction, now: dt.datetime = now) -> tuple[list[RunRecord], list[dict[str, Any]]]:
            runs = fill(tx, queue, now)
            return runs, record(tx, [started_event(run, now) for run in runs])

        runs, events = deps.store.transact(filled)
        publish_recorded(deps, events)
        start_dequeued(deps, events)
        started += runs
        if not runs or all(run.queue_limit is not None for run in runs):
            return started
