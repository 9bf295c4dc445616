"""Run queues through the orchestrator with in-memory fakes: one run per manifest, pause's queue, backfills."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from baton.domain.backfill import BackfillStatus
from baton.domain.records import JobStatus, RunStatus
from baton.errors import InvalidBackfill, ManifestPaused, RunInProgress
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
