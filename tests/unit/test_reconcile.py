"""The reconciler heals crashes, lost events and interrupted starts, with bounded lookups."""

import datetime as dt
from pathlib import Path

import pytest

from baton.domain.naming import bigquery_job_id
from baton.domain.records import JobStatus, RunStatus
from baton.domain.timing import ReconcilePolicy, due_for_check
from baton.service.ports import RemoteJob, RemoteState
from tests.unit.test_engine import World, manifest_of

POLICY = ReconcilePolicy(interval=dt.timedelta(minutes=5), lost_after=dt.timedelta(minutes=5))


def test_a_crash_between_commit_and_insert_is_submitted_later(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"a": [], "b": ["a"]}))
    run_id = world.start()
    world.submitter.fail_next = RuntimeError("crash")
    with pytest.raises(RuntimeError):
        world.finish(run_id, "a")
    assert world.orchestrator.reconcile(POLICY).submitted == 0, "too fresh: a handler may still be submitting"
    world.clock.now += dt.timedelta(minutes=1)
    assert world.orchestrator.reconcile(POLICY).submitted == 1
    assert world.job(run_id, "b").status == JobStatus.SUBMITTED


def test_a_lost_completion_is_fed_from_bigquery_state(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"a": [], "b": ["a"]}))
    run_id = world.start()
    job_id = bigquery_job_id("test", run_id, "a", 1)
    world.submitter.remote[job_id] = RemoteJob(job_id, RemoteState.RUNNING)
    world.clock.now += dt.timedelta(minutes=6)
    report = world.orchestrator.reconcile(POLICY)
    assert (report.checked_running, report.healed) == (1, 0)
    world.submitter.remote[job_id] = RemoteJob(job_id, RemoteState.DONE)
    world.clock.now += dt.timedelta(minutes=5)
    assert world.orchestrator.reconcile(POLICY).healed == 1
    assert world.job(run_id, "a").status == JobStatus.SUCCEEDED
    assert world.submitter.submitted_keys() == ["a", "b"]


def test_a_failed_job_found_by_the_reconciler_is_classified_like_an_event(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"a": []}, retry={"max_attempts": 2}))
    run_id = world.start()
    job_id = bigquery_job_id("test", run_id, "a", 1)
    world.submitter.remote[job_id] = RemoteJob(job_id, RemoteState.DONE, "backendError", "try again")
    world.clock.now += dt.timedelta(minutes=6)
    world.orchestrator.reconcile(POLICY)
    assert world.job(run_id, "a").attempt == 2


def test_a_submission_bigquery_never_got_is_resubmitted(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"a": []}))
    world.start()
    world.clock.now += dt.timedelta(minutes=6)
    assert world.orchestrator.reconcile(POLICY).resubmitted_lost == 1
    assert world.submitter.submitted_keys() == ["a", "a"]


def test_backoff_retries_are_submitted_once_not_before_passes(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"a": []}, retry={"max_attempts": 3, "backoff_seconds": 120}))
    run_id = world.start()
    world.finish(run_id, "a", error="rateLimitExceeded")
    world.clock.now += dt.timedelta(seconds=60)
    assert world.orchestrator.reconcile(POLICY).submitted == 0
    world.clock.now += dt.timedelta(seconds=61)
    assert world.orchestrator.reconcile(POLICY).submitted == 1
    assert world.submitter.requests[-1].job_id == bigquery_job_id("test", run_id, "a", 2)


def test_a_run_stuck_creating_is_abandoned(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"a": []}))
    run_id = world.start()
    world.store.runs[run_id] = world.store.runs[run_id].__class__(
        **{**world.store.runs[run_id].__dict__, "status": RunStatus.CREATING}
    )
    world.clock.now += dt.timedelta(minutes=16)
    assert world.orchestrator.reconcile(POLICY).abandoned_runs == 1
    assert world.store.runs[run_id].status == RunStatus.FAILED


def test_long_jobs_are_looked_up_logarithmically_often() -> None:
    interval = POLICY.interval
    checks = sum(due_for_check(interval * k, POLICY) for k in range(1, 12 * 24))  # a job running a whole day
    assert 1 <= checks <= 10
    assert not due_for_check(dt.timedelta(minutes=4), POLICY)
