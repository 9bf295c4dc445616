"""Holding and releasing a run, a run's own timeout, and the check before each batch of jobs.insert."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from baton.domain.limits import SUBMIT_INLINE
from baton.domain.records import JobStatus, RunRecord, RunStatus
from baton.domain.timing import ReconcilePolicy
from baton.domain.transitions.hold import accepts_submissions, is_held
from baton.domain.transitions.run_timeout import duration_text, past_deadline
from baton.errors import ManifestInvalid, RunNotHoldable
from baton.manifests.loading import parse_manifest
from baton.service import runs
from baton.service.ports import NoEventPublisher, SubmitOutcome, SubmitRequest
from tests.fakes import CollectingWorkQueue, InMemoryRunStore, RecordingPublisher
from tests.unit.test_engine import NOW, World, manifest_of

EDGES = {"land": [], "hist": ["land"], "side": ["land"], "cons": ["hist", "side"]}


def run_of(world: World, run_id: str) -> RunRecord:
    return world.store.runs[run_id]


# --- the rule ------------------------------------------------------------------------------------------------


def test_only_a_running_run_that_is_not_held_accepts_submissions() -> None:
    running = RunRecord("r", "m", "v", "test", {}, RunStatus.RUNNING, total_jobs=1, open_jobs=1)
    held = RunRecord("r", "m", "v", "test", {}, RunStatus.RUNNING, total_jobs=1, open_jobs=1, held_at=NOW)
    assert accepts_submissions(running) and not accepts_submissions(held) and not accepts_submissions(None)
    for status in (RunStatus.CREATING, RunStatus.CANCELLED, RunStatus.SUCCEEDED, RunStatus.FAILED):
        assert not accepts_submissions(RunRecord("r", "m", "v", "test", {}, status, total_jobs=1, open_jobs=1))
    assert is_held(held) and not is_held(RunRecord("r", "m", "v", "t", {}, RunStatus.CANCELLED, 1, 0, held_at=NOW))


def test_a_deadline_counts_only_while_the_run_is_running() -> None:
    timed = RunRecord("r", "m", "v", "test", {}, RunStatus.RUNNING, 1, 1, timeout_seconds=60, deadline=NOW)
    assert not past_deadline(timed, NOW) and past_deadline(timed, NOW + dt.timedelta(seconds=1))
    assert not past_deadline(RunRecord("r", "m", "v", "test", {}, RunStatus.FAILED, 1, 0, deadline=NOW), NOW + dt.timedelta(1))
    assert [duration_text(s) for s in (90, 1800, 7200, 3601)] == ["90s", "30m", "2h", "3601s"]


# --- hold and release --------------------------------------------------------------------------------------


def test_a_held_run_records_what_is_in_flight_and_submits_nothing_until_released(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of(EDGES))
    run_id = world.start()
    run, changed = world.orchestrator.hold(run_id, "warehouse migration")
    assert changed and is_held(run) and run.hold_reason == "warehouse migration"
    assert world.orchestrator.hold(run_id, "again") == (run, False), "holding again changes nothing"

    world.finish(run_id, "land")  # in flight when held: recorded, its dependents released and left READY
    assert world.submitter.submitted_keys() == ["land"]
    assert {world.job(run_id, key).status for key in ("hist", "side")} == {JobStatus.READY}
    world.clock.now += dt.timedelta(minutes=30)  # long past the resubmit lease: the reconciler still waits
    assert world.orchestrator.reconcile(ReconcilePolicy()).submitted == 0
    assert world.submitter.submitted_keys() == ["land"]

    released, handed = world.orchestrator.release(run_id)
    assert handed == 2 and not is_held(released)
    assert sorted(world.submitter.submitted_keys()) == ["hist", "land", "side"]
    for key in ("hist", "side", "cons"):
        world.finish(run_id, key)
    assert run_of(world, run_id).status == RunStatus.SUCCEEDED
    assert world.events.types() == ["run.started", "run.held", "run.released", "run.succeeded"]
    assert world.events.events[1]["reason"] == "warehouse migration"


def test_a_retry_while_held_waits_too(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"flaky": []}, retry={"max_attempts": 2}))
    run_id = world.start()
    world.orchestrator.hold(run_id, "x")
    world.finish(run_id, "flaky", error="backendError")  # retryable: its next attempt is a new submission
    assert world.job(run_id, "flaky").status == JobStatus.READY and len(world.submitter.requests) == 1
    world.orchestrator.release(run_id)
    assert world.job(run_id, "flaky").status == JobStatus.SUBMITTED and world.job(run_id, "flaky").attempt == 2


def test_release_hands_a_wide_ready_set_on_in_batches(tmp_path: Path) -> None:
    width = SUBMIT_INLINE + 30
    world = World(tmp_path, manifest_of({"root": [], **{f"leaf{n:03d}": ["root"] for n in range(width)}}))
    world.orchestrator.work = queue = CollectingWorkQueue()
    run_id = world.start()
    world.orchestrator.hold(run_id, "x")
    world.finish(run_id, "root")
    assert queue.items and len(world.submitter.requests) == 1, "batches handed on while held submit nothing..."
    for item in queue.items:
        world.orchestrator.carry_out(item)
    assert len(world.submitter.requests) == 1, "...when they arrive"
    queue.items.clear()
    _, handed = world.orchestrator.release(run_id)
    assert handed == width and len(world.submitter.requests) == 1 + SUBMIT_INLINE
    assert sum(len(item.job_keys) for item in queue.items) == width - SUBMIT_INLINE
    for item in queue.items:
        world.orchestrator.carry_out(item)
    assert len(set(world.submitter.submitted_keys())) == 1 + width


def test_only_a_running_run_is_held_or_released(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of(EDGES))
    run_id = world.start()
    world.orchestrator.cancel(run_id)
    with pytest.raises(RunNotHoldable, match=r"cannot be held: it is CANCELLED"):
        world.orchestrator.hold(run_id, "x")
    with pytest.raises(RunNotHoldable, match=r"cannot be released: it is CANCELLED"):
        world.orchestrator.release(run_id)
    assert world.orchestrator.release(world.start())[1] == 0, "a run not held: nothing to release"


def test_a_cancelled_held_run_retried_is_not_held(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of(EDGES))
    run_id = world.start()
    world.orchestrator.hold(run_id, "x")
    world.orchestrator.cancel(run_id)
    retried = world.orchestrator.retry(run_id)
    assert accepts_submissions(retried) and world.job(run_id, "land").status == JobStatus.SUBMITTED


# --- the check before jobs.insert ----------------------------------------------------------------------------


class CountingStore(InMemoryRunStore):
    def __init__(self) -> None:
        super().__init__()
        self.run_reads = 0

    def get_run(self, run_id: str) -> RunRecord | None:
        self.run_reads += 1
        return super().get_run(run_id)


def counting_world(tmp_path: Path, edges: dict[str, list[str]]) -> tuple[World, CountingStore]:
    world = World(tmp_path, manifest_of(edges))
    world.orchestrator.store = world.store = store = CountingStore()
    return world, store


def test_submission_reads_the_run_once_per_batch_and_only_when_it_has_jobs(tmp_path: Path) -> None:
    world, store = counting_world(tmp_path, {"root": [], "a": ["root"], "b": ["root"], "c": ["root"], "d": ["a"]})
    run_id = world.start()
    reads = store.run_reads
    world.finish(run_id, "root")  # releases three: one read before their inserts
    assert store.run_reads - reads == 1 and len(world.submitter.requests) == 4
    reads = store.run_reads
    world.finish(run_id, "b")  # releases nothing: no read
    assert store.run_reads == reads


def test_a_cancel_during_a_batch_of_slow_inserts_stops_the_rest(tmp_path: Path) -> None:
    world, _ = counting_world(tmp_path, {"root": [], **{f"j{n}": ["root"] for n in range(5)}})
    run_id = world.start()
    submit = world.submitter.submit

    def slow_insert_then_cancel(request: SubmitRequest) -> SubmitOutcome:
        outcome = submit(request)
        world.clock.now += dt.timedelta(seconds=2)  # each insert takes 2 s
        if request.labels["baton_job"] == "j0":
            runs.cancel(world.orchestrator, run_id)  # an operator's cancel commits meanwhile
        return outcome

    world.submitter.submit = slow_insert_then_cancel  # type: ignore[method-assign]
    world.finish(run_id, "root")
    assert world.submitter.submitted_keys() == ["root", "j0"], "nothing inserted after the cancel committed"
    assert world.job(run_id, "j0").bigquery_job_id in world.submitter.cancelled, "the raced one is stopped"
    assert {world.job(run_id, f"j{n}").status for n in range(5)} == {JobStatus.CANCELLED}


# --- run timeout ---------------------------------------------------------------------------------------------


def test_a_run_past_its_run_timeout_is_cancelled_with_run_timed_out(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of(EDGES, run_timeout="10m"))
    run_id = world.start()
    assert run_of(world, run_id).deadline == NOW + dt.timedelta(minutes=10)
    world.finish(run_id, "land")
    world.clock.now += dt.timedelta(minutes=9)
    assert world.orchestrator.reconcile(ReconcilePolicy()).timed_out_runs == 0
    world.clock.now += dt.timedelta(minutes=2)
    report = world.orchestrator.reconcile(ReconcilePolicy())
    assert report.timed_out_runs == 1 and report.errors == 0
    run = run_of(world, run_id)
    assert (run.status, run.open_jobs, run.succeeded_jobs, run.cancelled_jobs) == (RunStatus.CANCELLED, 0, 1, 3)
    assert run.end_reason == "timeout: the run ran past its run_timeout of 10m"
    in_bigquery = {world.job(run_id, key).bigquery_job_id for key in ("hist", "side")}
    assert in_bigquery <= set(world.submitter.cancelled), "its BigQuery jobs are cancelled, as `baton cancel` does"
    assert world.job(run_id, "cons").error == run.end_reason
    assert world.events.types()[-2:] == ["run.timed_out", "run.cancelled"]
    timed_out = world.events.events[-2]
    assert (timed_out["reason"], timed_out["timeout_seconds"], timed_out["status"]) == (run.end_reason, 600, "CANCELLED")
    assert world.orchestrator.reconcile(ReconcilePolicy()).timed_out_runs == 0, "a cancelled run leaves the index"
    world.finish(run_id, "hist")  # BigQuery's own event of the stopped job, later: changes nothing
    assert run_of(world, run_id).status == RunStatus.CANCELLED


def test_a_retried_run_gets_a_full_run_timeout_again(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of(EDGES, run_timeout=600))
    run_id = world.start()
    world.clock.now += dt.timedelta(minutes=11)
    world.orchestrator.reconcile(ReconcilePolicy())
    assert run_of(world, run_id).status == RunStatus.CANCELLED
    retried = world.orchestrator.retry(run_id)
    assert (retried.deadline, retried.end_reason) == (world.clock.now + dt.timedelta(minutes=10), None)
    assert world.orchestrator.reconcile(ReconcilePolicy()).timed_out_runs == 0


def test_a_run_that_ended_or_got_a_new_deadline_since_the_index_was_read_is_left_alone(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"only": []}, run_timeout="1m"))
    run_id = world.start()
    world.finish(run_id, "only")
    world.clock.now += dt.timedelta(minutes=5)
    assert runs.time_out(world.orchestrator, run_id) is None
    assert run_of(world, run_id).status == RunStatus.SUCCEEDED and "run.timed_out" not in world.events.types()


def test_a_held_run_still_times_out(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of(EDGES, run_timeout="1h"))
    run_id = world.start()
    world.orchestrator.hold(run_id, "x")
    world.clock.now += dt.timedelta(hours=2)
    assert world.orchestrator.reconcile(ReconcilePolicy()).timed_out_runs == 1
    assert run_of(world, run_id).status == RunStatus.CANCELLED


def test_run_timeout_is_validated_and_kept_out_of_versions_that_do_not_set_it(tmp_path: Path) -> None:
    with pytest.raises(ManifestInvalid, match=r"run_timeout '3 days' must be seconds or a duration like 90s"):
        parse_manifest(manifest_of({"a": []}, run_timeout="3 days"), "m.yaml", tmp_path)
    plain = parse_manifest(manifest_of({"a": []}), "m.yaml", tmp_path)
    timed = parse_manifest(manifest_of({"a": []}, run_timeout="2h"), "m.yaml", tmp_path)
    assert (plain.run_timeout_seconds, timed.run_timeout_seconds) == (None, 7200)
    assert plain.version != timed.version and plain.jobs[0].timeout_seconds is None, "not a job timeout"


# --- the outbox without a topic -------------------------------------------------------------------------------


def test_a_process_without_a_run_events_topic_leaves_the_events_for_the_reconciler(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of(EDGES))
    run_id = world.start()
    operator: Any = world.orchestrator
    operator.events = NoEventPublisher()  # an operator's `baton` without BATON_RUN_EVENTS_TOPIC
    operator.cancel(run_id)
    assert [event["type"] for event in world.store.outbox.values()] == ["run.cancelled"], "kept, not dropped"
    operator.events = publisher = RecordingPublisher()  # the reconciler, which has the topic
    world.clock.now += dt.timedelta(minutes=1)
    assert operator.reconcile(ReconcilePolicy()).published_events == 1
    assert publisher.types() == ["run.cancelled"] and world.store.outbox == {}
