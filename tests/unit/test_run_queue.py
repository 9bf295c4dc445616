"""Run queues through the orchestrator with in-memory fakes: one run per manifest, pause's queue, backfills."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from baton.domain.backfill import BackfillStatus
from baton.domain.records import JobStatus, RunStatus
from baton.domain.timing import ReconcilePolicy
from baton.errors import InvalidBackfill, ManifestPaused, RunInProgress
from baton.service import backfills
from tests.unit.test_engine import World, manifest_of

CHAIN = {"a": [], "b": ["a"]}
DATED = {"params": {"run_date": {"type": "DATE"}}}


def start(world: World, params: dict[str, Any] | None = None) -> str:
    """A start a second after the last one: the queue's order is creation time (then run ID, at the same instant)."""
    world.clock.now += dt.timedelta(seconds=1)
    return world.start(params)


def status(world: World, run_id: str) -> RunStatus:
    return world.store.runs[run_id].status


def finish_run(world: World, run_id: str, error: str | None = None) -> None:
    """Complete each open job of the run in key order (the chain's order)."""
    for key in ("a", "b"):
        if world.job(run_id, key).status == JobStatus.SUBMITTED:
            world.finish(run_id, key, error)


def test_a_second_start_waits_queued_and_starts_when_the_first_ends(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of(CHAIN))
    first = start(world)
    second = start(world)
    third = start(world)
    assert [status(world, run) for run in (first, second, third)] == [RunStatus.RUNNING, RunStatus.QUEUED, RunStatus.QUEUED]
    assert world.job(second, "a").status == JobStatus.READY, "its rows are written; nothing is submitted"
    assert world.submitter.submitted_keys() == ["a"]
    finish_run(world, first)
    assert (status(world, first), status(world, second), status(world, third)) == (
        RunStatus.SUCCEEDED,
        RunStatus.RUNNING,
        RunStatus.QUEUED,
    )
    assert world.job(second, "a").status == JobStatus.SUBMITTED, "started by the first run's end, after its commit"
    finish_run(world, second, error="invalidQuery")  # a failed run hands its slot on too
    assert (status(world, second), status(world, third)) == (RunStatus.FAILED, RunStatus.RUNNING)
    types = world.events.types()
    assert types.count("run.queued") == 2 and types.count("run.started") == 3


def test_skip_refuses_a_start_and_writes_nothing(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of(CHAIN, concurrency="skip"))
    first = start(world)
    with pytest.raises(RunInProgress, match=f"manifest 'm' has run {first} in progress and `concurrency: skip`"):
        start(world)
    assert list(world.store.runs) == [first]
    finish_run(world, first)
    assert status(world, start(world)) == RunStatus.RUNNING


def test_allow_lets_runs_overlap(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of(CHAIN, concurrency="allow"))
    runs = [start(world) for _ in range(3)]
    assert [status(world, run) for run in runs] == [RunStatus.RUNNING] * 3


def test_cancelling_a_queued_run_just_cancels_it(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of(CHAIN))
    first, second, third = start(world), start(world), start(world)
    world.orchestrator.cancel(second)
    assert (status(world, first), status(world, second), status(world, third)) == (
        RunStatus.RUNNING,
        RunStatus.CANCELLED,
        RunStatus.QUEUED,
    )
    assert all(job.status == JobStatus.CANCELLED for job in world.store.list_jobs(second))
    world.orchestrator.cancel(first)  # a cancelled running run hands its slot on
    assert status(world, third) == RunStatus.RUNNING
    assert world.job(third, "a").status == JobStatus.SUBMITTED


def test_paused_with_queue_holds_starts_until_resume(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of(CHAIN, when_paused="queue"))
    world.orchestrator.pause("m", "warehouse migration")
    held = [start(world), start(world)]
    assert [status(world, run) for run in held] == [RunStatus.QUEUED] * 2
    assert world.submitter.submitted_keys() == []
    started = world.orchestrator.resume("m")
    assert [run.run_id for run in started] == held[:1], "one at a time: concurrency still applies"
    assert world.job(held[0], "a").status == JobStatus.SUBMITTED
    finish_run(world, held[0])
    assert status(world, held[1]) == RunStatus.RUNNING


def test_paused_with_refuse_refuses_as_before(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of(CHAIN))
    world.orchestrator.pause("m", "migration")
    with pytest.raises(ManifestPaused):
        start(world)
    assert world.store.runs == {}


def test_a_run_ending_while_paused_starts_nothing(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of(CHAIN))
    first, second = start(world), start(world)
    world.orchestrator.pause("m", "look first")
    finish_run(world, first)
    assert status(world, second) == RunStatus.QUEUED
    world.orchestrator.resume("m")
    assert status(world, second) == RunStatus.RUNNING


def test_a_retried_run_waits_behind_a_running_one(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of(CHAIN))
    failed = start(world)
    finish_run(world, failed, error="invalidQuery")
    running = start(world)
    assert world.orchestrator.retry(failed).status == RunStatus.QUEUED
    finish_run(world, running)
    assert status(world, failed) == RunStatus.RUNNING
    assert world.job(failed, "a").status == JobStatus.SUBMITTED


def backfill(world: World, days: int, max_active: int, **options: Any) -> Any:
    first = dt.date(2026, 11, 1)
    return world.orchestrator.start_backfill("m", first, first + dt.timedelta(days=days - 1), max_active=max_active, **options)


def test_a_backfill_runs_one_run_per_date_n_at_a_time(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of(CHAIN, **DATED))
    started = backfill(world, 5, 2)
    runs = [run.run_id for run in started.runs]
    assert [started.date_of(run) for run in started.runs] == [f"2026-11-0{day}" for day in range(1, 6)]
    assert [status(world, run) for run in runs] == [RunStatus.RUNNING] * 2 + [RunStatus.QUEUED] * 3
    other = start(world, {"run_date": "2026-12-01"})
    assert status(world, other) == RunStatus.RUNNING, "a backfill's runs are not the manifest's queue"
    while any(not status(world, run).terminal for run in runs):
        running = [run for run in runs if status(world, run) == RunStatus.RUNNING]
        assert len(running) <= 2
        finish_run(world, running[0])
    progress = world.orchestrator.backfill(started.backfill.backfill_id)
    assert progress.backfill.status == BackfillStatus.SUCCEEDED
    assert progress.counts()["SUCCEEDED"] == 5
    assert world.events.types().count("backfill.finished") == 1


def test_a_backfill_is_cancelled_whole_and_its_failed_runs_retried(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of(CHAIN, **DATED))
    started = backfill(world, 4, 2)
    backfill_id = started.backfill.backfill_id
    runs = [run.run_id for run in started.runs]
    finish_run(world, runs[0], error="invalidQuery")
    cancelled = world.orchestrator.cancel_backfill(backfill_id)
    assert cancelled.backfill.status == BackfillStatus.CANCELLED
    assert [status(world, run) for run in runs] == [RunStatus.FAILED] + [RunStatus.CANCELLED] * 3
    retried = world.orchestrator.retry_backfill(backfill_id)
    assert retried.backfill.status == BackfillStatus.RUNNING
    assert [status(world, run) for run in runs] == [RunStatus.RUNNING] * 2 + [RunStatus.QUEUED] * 2
    while any(not status(world, run).terminal for run in runs):
        finish_run(world, next(run for run in runs if status(world, run) == RunStatus.RUNNING))
    assert world.orchestrator.backfill(backfill_id).backfill.status == BackfillStatus.SUCCEEDED
    assert world.events.types().count("backfill.finished") == 2, "cancelled, then ended once more by its retried runs"


def test_retrying_one_run_of_an_ended_backfill_reopens_the_backfill(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of(CHAIN, **DATED))
    started = backfill(world, 2, 2)
    backfill_id = started.backfill.backfill_id
    failing, fine = (run.run_id for run in started.runs)
    finish_run(world, failing, error="invalidQuery")
    finish_run(world, fine)
    assert world.orchestrator.backfill(backfill_id).backfill.status == BackfillStatus.FAILED
    world.orchestrator.retry(failing)
    reopened = world.orchestrator.backfill(backfill_id).backfill
    assert (reopened.status, reopened.finished_at) == (BackfillStatus.RUNNING, None)
    finish_run(world, failing)
    assert world.orchestrator.backfill(backfill_id).backfill.status == BackfillStatus.SUCCEEDED
    assert world.events.types().count("backfill.finished") == 2, "FAILED, then SUCCEEDED once its retried run did"


@pytest.mark.parametrize(
    ("manifest", "options", "message"),
    [
        ({}, {}, "name the date param to bind"),
        (DATED, {"max_active": 0}, "max active runs must be 1 to 100, got 0"),
        (DATED, {"param": "nope"}, "param 'nope' is not declared"),
    ],
)
def test_a_bad_backfill_is_refused_before_anything_is_written(
    tmp_path: Path, manifest: dict[str, Any], options: dict[str, Any], message: str
) -> None:
    world = World(tmp_path, manifest_of(CHAIN, **manifest))
    options = {"max_active": 1, **options}
    with pytest.raises(InvalidBackfill, match=message):
        backfill(world, 3, **options)
    assert world.store.runs == {} and world.store.backfills == {}


REAL_START_DATE, REAL_STARTED = backfills._start_date, backfills._started


class Stopped(Exception):
    """The start's process dying (a crash, a Ctrl-C) after some of its dates."""


def stopping_after(monkeypatch: pytest.MonkeyPatch, dates: int) -> None:
    """The start writes `dates` dates' runs, then stops; the reconciler's resume (later) writes as usual."""
    written = [0]

    def start_date(*args: Any, **kwargs: Any) -> Any:
        written[0] += 1
        if written[0] > dates:
            raise Stopped
        return REAL_START_DATE(*args, **kwargs)

    monkeypatch.setattr(backfills, "_start_date", start_date)


def stopped_backfill(world: World, monkeypatch: pytest.MonkeyPatch, days: int, written: int, **options: Any) -> Any:
    """The backfill of a start stopped after `written` dates (or before it ended, if a test stops `_started`)."""
    stopping_after(monkeypatch, written)
    with pytest.raises(Stopped):
        backfill(world, days, 2, **options)
    monkeypatch.setattr(backfills, "_start_date", REAL_START_DATE)
    monkeypatch.setattr(backfills, "_started", REAL_STARTED)
    (stopped,) = world.store.backfills.values()
    return stopped


def test_a_backfill_start_that_stopped_is_finished_by_the_reconciler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = manifest_of(CHAIN, params={"run_date": {"type": "DATE"}, "region": {"type": "STRING"}})
    world = World(tmp_path, manifest)
    stopped = stopped_backfill(world, monkeypatch, 5, 2, params={"region": "eu"})
    backfill_id = stopped.backfill_id
    assert (stopped.status, stopped.starting, len(world.store.backfill_runs(backfill_id))) == (BackfillStatus.RUNNING, True, 2)

    world.clock.now += ReconcilePolicy().abandon_creating_after - dt.timedelta(seconds=1)
    assert world.orchestrator.reconcile().backfill_runs_written == 0, "a start this young may still be writing"
    world.clock.now += dt.timedelta(seconds=1)
    assert world.orchestrator.reconcile().backfill_runs_written == 3
    progress = world.orchestrator.backfill(backfill_id)
    assert not progress.backfill.starting
    assert [progress.date_of(run) for run in progress.runs] == [f"2026-11-0{day}" for day in range(1, 6)]
    assert {run.params["region"].value for run in progress.runs} == {"eu"}, "the start's other params, from its row"
    assert [run.status for run in progress.runs] == [RunStatus.RUNNING] * 2 + [RunStatus.QUEUED] * 3
    assert world.orchestrator.reconcile().backfill_runs_written == 0

    runs = [run.run_id for run in progress.runs]
    while any(not status(world, run).terminal for run in runs):
        finish_run(world, next(run for run in runs if status(world, run) == RunStatus.RUNNING))
    assert world.orchestrator.backfill(backfill_id).backfill.status == BackfillStatus.SUCCEEDED
    assert world.events.types().count("backfill.started") == 1 and world.events.types().count("backfill.finished") == 1


def test_a_start_that_stopped_before_its_first_run_is_finished_with_its_started_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(tmp_path, manifest_of(CHAIN, **DATED))
    stopped = stopped_backfill(world, monkeypatch, 3, 0)
    assert world.events.types() == []
    world.clock.now += ReconcilePolicy().abandon_creating_after
    assert world.orchestrator.reconcile().backfill_runs_written == 3
    assert world.events.types().count("backfill.started") == 1
    assert len(world.orchestrator.backfill(stopped.backfill_id).runs) == 3


def test_a_date_written_meanwhile_is_not_written_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A start still going when the reconciler resumes it: both may reach a date; one run per date, whoever wins."""
    world = World(tmp_path, manifest_of(CHAIN, **DATED))
    stopped = stopped_backfill(world, monkeypatch, 4, 1)
    seen = world.store.backfill_runs(stopped.backfill_id)  # what the resume reads, before the start's next date lands
    world.clock.now += ReconcilePolicy().abandon_creating_after
    resume = backfills.resume_start(world.orchestrator, stopped, limit=1)
    assert resume == 1
    monkeypatch.setattr(world.store, "backfill_runs", lambda backfill_id: seen)
    assert backfills.resume_start(world.orchestrator, stopped, limit=10) == 2, "the date written meanwhile is skipped"
    monkeypatch.delattr(world.store, "backfill_runs")
    progress = world.orchestrator.backfill(stopped.backfill_id)
    assert sorted(progress.date_of(run) for run in progress.runs) == [f"2026-11-0{day}" for day in range(1, 5)]
    assert not progress.backfill.starting


def test_a_backfill_whose_runs_ended_before_its_start_was_finished_ends_then(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(tmp_path, manifest_of(CHAIN, **DATED))

    def stop(*args: Any) -> None:
        raise Stopped

    monkeypatch.setattr(backfills, "_started", stop)  # every date written, stopped before the start ended
    stopped = stopped_backfill(world, monkeypatch, 2, 2)
    assert stopped.starting
    for run in world.store.backfill_runs(stopped.backfill_id):
        while not status(world, run.run_id).terminal:
            finish_run(world, run.run_id)
    assert world.orchestrator.backfill(stopped.backfill_id).backfill.status == BackfillStatus.SUCCEEDED, (
        "every date's run is written and ended: the backfill ends at its last run's end, starting or not"
    )
    world.clock.now += ReconcilePolicy().abandon_creating_after
    assert world.orchestrator.reconcile().backfill_runs_written == 0
    assert not world.orchestrator.backfill(stopped.backfill_id).backfill.starting, "its end ended the start too"
    assert world.events.types().count("backfill.finished") == 1
