"""Wide and deep runs under a small commit size: every path works in bounded steps and hands the rest on."""

from __future__ import annotations

from pathlib import Path

from baton.domain.limits import SUBMIT_BATCH, SUBMIT_INLINE
from baton.domain.records import JobStatus, RunStatus
from tests.fakes import CollectingWorkQueue
from tests.unit.test_engine import World, manifest_of

LIMIT = 20  # job rows one commit may write besides the transition's own


def wide(width: int) -> dict[str, list[str]]:
    """root -> width jobs -> sink."""
    middle = [f"m{index:04d}" for index in range(width)]
    return {"root": [], **{key: ["root"] for key in middle}, "sink": middle}


def chain(depth: int) -> dict[str, list[str]]:
    keys = [f"c{index:04d}" for index in range(depth)]
    return {key: ([keys[index - 1]] if index else []) for index, key in enumerate(keys)}


def bounded_world(tmp_path: Path, edges: dict[str, list[str]]) -> World:
    world = World(tmp_path, manifest_of(edges))
    world.store.jobs_per_commit = LIMIT
    return world


def test_a_wide_release_is_released_and_submitted_in_bounded_steps(tmp_path: Path) -> None:
    world = bounded_world(tmp_path, wide(250))
    run_id = world.start()
    world.finish(run_id, "root")
    middle = [key for key in world.submitter.submitted_keys() if key.startswith("m")]
    assert sorted(middle) == [f"m{index:04d}" for index in range(250)], "every dependent released and submitted once"
    assert len(set(middle)) == 250
    for key in middle:
        world.finish(run_id, key)
    world.finish(run_id, "sink")
    assert world.store.runs[run_id].status == RunStatus.SUCCEEDED
    assert world.job(run_id, "root").release_cursor is None
    # The job itself, its catalog-free run row aside: never more than LIMIT dependents plus the job per commit.
    assert world.store.largest_commit_jobs <= LIMIT + 1


def test_release_steps_are_handed_on_and_a_redelivered_step_changes_nothing(tmp_path: Path) -> None:
    world = bounded_world(tmp_path, wide(70))
    world.orchestrator.work = queue = CollectingWorkQueue()
    run_id = world.start()
    world.finish(run_id, "root")
    assert [item.kind for item in queue.items] == ["release"], "the first LIMIT were released in the completion's commit"
    released_first = [key for key in world.submitter.submitted_keys() if key != "root"]
    assert len(released_first) == LIMIT
    step = queue.items.pop()
    world.orchestrator.carry_out(step)
    world.orchestrator.carry_out(step)  # Pub/Sub delivers at least once
    assert len([key for key in world.submitter.submitted_keys() if key != "root"]) == 2 * LIMIT
    assert world.job(run_id, "sink").pending_upstreams == 70, "the sink waits on all 70, counted once each"
    while queue.items:
        world.orchestrator.carry_out(queue.items.pop(0))
    submitted = [key for key in world.submitter.submitted_keys() if key != "root"]
    assert sorted(submitted) == [f"m{index:04d}" for index in range(70)]


def test_a_large_release_submits_a_few_inline_and_hands_the_rest_on_in_batches(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of(wide(SUBMIT_INLINE + 2 * SUBMIT_BATCH + 7)))
    world.orchestrator.work = queue = CollectingWorkQueue()
    run_id = world.start()
    world.finish(run_id, "root")
    assert len(world.submitter.submitted_keys()) == 1 + SUBMIT_INLINE
    assert [len(item.job_keys) for item in queue.items] == [SUBMIT_BATCH, SUBMIT_BATCH, 7]
    for item in list(queue.items):
        world.orchestrator.carry_out(item)
    world.orchestrator.carry_out(queue.items[0])  # a redelivered batch is a 409 per job, nothing more
    middle = {key for key in world.submitter.submitted_keys() if key.startswith("m")}
    assert len(middle) == SUBMIT_INLINE + 2 * SUBMIT_BATCH + 7
    assert all(world.job(run_id, key).status == JobStatus.SUBMITTED for key in middle)


def test_a_root_failure_skips_the_whole_dag_in_bounded_steps(tmp_path: Path) -> None:
    world = bounded_world(tmp_path, wide(250))
    run_id = world.start()
    world.finish(run_id, "root", error="invalidQuery")
    run = world.store.runs[run_id]
    assert run.status == RunStatus.FAILED
    assert (run.failed_jobs, run.skipped_jobs, run.open_jobs) == (1, 251, 0)
    assert world.job(run_id, "sink").error == "upstream 'root' failed"
    assert world.store.largest_commit_jobs <= LIMIT + 1
    assert [event["type"] for event in world.events.events][-1] == "run.failed"


def test_a_failure_at_the_head_of_a_deep_chain_is_skipped_step_by_step(tmp_path: Path) -> None:
    world = bounded_world(tmp_path, chain(300))
    world.orchestrator.work = queue = CollectingWorkQueue()
    run_id = world.start()
    world.finish(run_id, "c0000", error="invalidQuery")
    steps = 0
    while queue.items:
        world.orchestrator.carry_out(queue.items.pop(0))
        steps += 1
    run = world.store.runs[run_id]
    assert (run.status, run.skipped_jobs) == (RunStatus.FAILED, 299)
    assert steps >= 299 // LIMIT, "the walk went on by message"
    assert world.store.largest_commit_jobs <= LIMIT + 1


def test_cancelling_a_wide_run_closes_it_in_chunks_and_cancels_what_bigquery_holds(tmp_path: Path) -> None:
    world = bounded_world(tmp_path, wide(250))
    run_id = world.start()
    world.finish(run_id, "root")
    commits = world.store.commits
    world.orchestrator.cancel(run_id)
    run = world.store.runs[run_id]
    assert (run.status, run.open_jobs, run.cancelled_jobs) == (RunStatus.CANCELLED, 0, 251)
    assert world.store.commits - commits >= 251 // LIMIT
    assert sorted(world.submitter.cancelled) == sorted(
        world.job(run_id, key).bigquery_job_id for key in world.submitter.submitted_keys() if key != "root"
    )
    assert world.store.largest_commit_jobs <= LIMIT + 1


def test_retrying_a_wide_failed_run_succeeds(tmp_path: Path) -> None:
    world = bounded_world(tmp_path, wide(250))
    run_id = world.start()
    world.finish(run_id, "root", error="invalidQuery")
    world.orchestrator.retry(run_id)
    world.finish(run_id, "root")
    for index in range(250):
        world.finish(run_id, f"m{index:04d}")
    world.finish(run_id, "sink")
    assert world.store.runs[run_id].status == RunStatus.SUCCEEDED
    assert world.store.largest_commit_jobs <= LIMIT + 1
