"""The reconciler's policy, paging, repair of stalled runs and isolation of failures, on the in-memory core."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest

from baton.domain.naming import bigquery_job_id
from baton.domain.records import JobRecord, JobStatus, RunStatus
from baton.domain.timing import ReconcilePolicy
from baton.errors import TransientError
from baton.service.ports import RemoteJob, RemoteState
from tests.fakes import InMemoryRunStore
from tests.unit.test_engine import World, manifest_of

SHORT = ReconcilePolicy(
    interval=dt.timedelta(seconds=1),
    lost_after=dt.timedelta(seconds=3),
    resubmit_after=dt.timedelta(seconds=2),
    stalled_after=dt.timedelta(seconds=10),
)


class PagingStore(InMemoryRunStore):
    """Pages like the Spanner store: the token is the index of the next row."""

    def jobs_page(self, status: JobStatus, limit: int, page_token: str | None = None) -> tuple[list[JobRecord], str | None]:
        rows = sorted((j for j in self.jobs.values() if j.status == status), key=lambda j: (j.run_id, j.job_key))
        start = int(page_token or 0)
        page = rows[start : start + limit]
        return page, str(start + limit) if start + limit < len(rows) else None


def set_job(world: World, run_id: str, key: str, **changes: object) -> None:
    world.store.jobs[(run_id, key)] = replace(world.store.jobs[(run_id, key)], **changes)  # type: ignore[arg-type]


def test_a_short_resubmit_time_heals_a_crash_in_seconds(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"a": [], "b": ["a"]}))
    run_id = world.start()
    world.submitter.fail_next = RuntimeError("the instance died")
    with pytest.raises(RuntimeError):
        world.finish(run_id, "a")
    world.clock.now += dt.timedelta(seconds=1)
    assert world.orchestrator.reconcile(SHORT).submitted == 0, "the releasing handler may still be submitting"
    world.clock.now += dt.timedelta(seconds=1)
    assert world.orchestrator.reconcile(SHORT).submitted == 1
    assert world.job(run_id, "b").status == JobStatus.SUBMITTED


def test_paging_reaches_jobs_behind_long_running_ones_and_stays_bounded(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({f"j{i:02d}": [] for i in range(12)}))
    world.store = PagingStore()
    world.orchestrator.store = world.store
    run_id = world.start()
    for i in range(12):
        job_id = bigquery_job_id("test", run_id, f"j{i:02d}", 1)
        world.submitter.remote[job_id] = RemoteJob(job_id, RemoteState.DONE if i == 11 else RemoteState.RUNNING)
    world.clock.now += dt.timedelta(seconds=3)
    for i in range(11):  # submitted a moment ago, so not due; only the last one's event is overdue
        set_job(world, run_id, f"j{i:02d}", submitted_at=world.clock.now - dt.timedelta(seconds=1))

    report = world.orchestrator.reconcile(replace(SHORT, batch=5, max_pages=3))
    assert (report.scanned, report.truncated, report.healed, report.checked_running) == (12, False, 1, 0)
    assert world.job(run_id, "j11").status == JobStatus.SUCCEEDED

    world.clock.now += dt.timedelta(seconds=2)  # now all eleven are due: lookups stop at one batch
    bounded = world.orchestrator.reconcile(replace(SHORT, batch=4, max_pages=2))
    assert (bounded.scanned, bounded.truncated, bounded.checked_running) == (8, True, 4)


def test_a_run_whose_release_went_missing_is_repaired_and_continues(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"a": [], "b": ["a"], "c": ["b"]}))
    run_id = world.start()
    world.finish(run_id, "a")
    world.finish(run_id, "b")
    # As if b's release of c had never happened: c PENDING on a finished upstream, nothing in flight.
    set_job(world, run_id, "c", status=JobStatus.PENDING, pending_upstreams=1, ready_at=None, submitted_at=None)
    world.clock.now += dt.timedelta(seconds=5)
    assert world.orchestrator.reconcile(SHORT).repaired_runs == 0, "younger than stalled_after"
    world.clock.now += dt.timedelta(seconds=10)

    report = world.orchestrator.reconcile(SHORT)

    assert report.repaired_runs == 1
    assert world.job(run_id, "c").status == JobStatus.SUBMITTED
    world.finish(run_id, "c")
    assert world.store.runs[run_id].status == RunStatus.SUCCEEDED


def test_a_run_behind_a_failure_that_was_never_skipped_ends_failed(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"a": [], "b": ["a"], "c": ["b"]}))
    run_id = world.start()
    world.finish(run_id, "a", error="invalidQuery")
    for key in ("b", "c"):  # the skip was lost
        set_job(world, run_id, key, status=JobStatus.PENDING, finished_at=None, error=None)
    world.store.runs[run_id] = replace(world.store.runs[run_id], status=RunStatus.RUNNING, open_jobs=2, skipped_jobs=0)
    world.clock.now += dt.timedelta(seconds=11)

    assert world.orchestrator.reconcile(SHORT).repaired_runs == 1

    run = world.store.runs[run_id]
    assert (run.status, run.failed_jobs, run.skipped_jobs, run.open_jobs) == (RunStatus.FAILED, 1, 2, 0)
    assert {world.job(run_id, k).status for k in ("b", "c")} == {JobStatus.SKIPPED}
    assert world.events.types()[-1] == "run.failed"
    assert world.orchestrator.reconcile(SHORT).repaired_runs == 0, "a repaired run is left alone"


def test_a_run_whose_counters_drifted_finishes_from_its_jobs(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"a": []}))
    run_id = world.start()
    world.finish(run_id, "a")
    world.store.runs[run_id] = replace(world.store.runs[run_id], status=RunStatus.RUNNING, open_jobs=1, succeeded_jobs=0)
    world.clock.now += dt.timedelta(seconds=11)

    world.orchestrator.reconcile(SHORT)

    run = world.store.runs[run_id]
    assert (run.status, run.open_jobs, run.succeeded_jobs) == (RunStatus.SUCCEEDED, 0, 1)
    assert world.events.types()[-1] == "run.succeeded"


def test_a_run_with_a_job_in_flight_is_not_touched(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"a": [], "b": ["a"]}))
    run_id = world.start()
    job_id = bigquery_job_id("test", run_id, "a", 1)
    world.submitter.remote[job_id] = RemoteJob(job_id, RemoteState.RUNNING)
    before = (dict(world.store.runs), dict(world.store.jobs))
    world.clock.now += dt.timedelta(seconds=11)
    assert world.orchestrator.reconcile(SHORT).repaired_runs == 0
    assert (world.store.runs, world.store.jobs) == before


def test_a_transient_failure_leaves_that_job_for_next_time_and_heals_the_rest(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"a": [], "b": []}))
    run_id = world.start()
    for key in ("a", "b"):  # both released, neither submitted (a crash)
        set_job(world, run_id, key, status=JobStatus.READY, submitted_at=None)
    world.clock.now += dt.timedelta(seconds=2)
    world.submitter.fail_next = TransientError("BigQuery: 503")

    report = world.orchestrator.reconcile(SHORT)

    assert (report.submitted, report.errors) == (1, 1)
    assert sorted(world.job(run_id, k).status for k in ("a", "b")) == [JobStatus.READY, JobStatus.SUBMITTED]
    assert world.orchestrator.reconcile(SHORT).submitted == 1


def test_one_job_that_bigquery_always_refuses_does_not_stop_the_healing_of_other_runs(tmp_path: Path) -> None:
    from google.api_core import exceptions as gexc

    world = World(tmp_path, manifest_of({"a": [], "b": ["a"]}, concurrency="allow"))
    bad = world.start()
    world.submitter.refuse = lambda request: (
        gexc.BadRequest("Invalid table name", errors=[{"reason": "invalid"}]) if request.labels["baton_run"] == bad else None
    )
    healed = []
    for _ in range(3):  # pass after pass, a new run whose release was lost behind the bad one
        good = world.start()
        for run_id in (bad, good):
            set_job(world, run_id, "a", status=JobStatus.READY, ready_at=world.clock.now, submitted_at=None)
        world.clock.now += dt.timedelta(seconds=3)

        report = world.orchestrator.reconcile(SHORT)

        assert report.errors >= 1
        assert world.job(good, "a").status == JobStatus.SUBMITTED
        healed.append(good)
    assert all(world.job(run_id, "a").status == JobStatus.SUBMITTED for run_id in healed)
    assert world.job(bad, "a").status != JobStatus.SUBMITTED


def test_a_lookup_that_fails_for_a_non_transient_reason_is_counted_and_the_rest_heal(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"a": []}, concurrency="allow"))
    first, second = world.start(), world.start()
    world.submitter.lookup_errors[bigquery_job_id("test", first, "a", 1)] = ValueError("an answer Baton cannot read")
    job_id = bigquery_job_id("test", second, "a", 1)
    world.submitter.remote[job_id] = RemoteJob(job_id, RemoteState.DONE)
    world.clock.now += dt.timedelta(seconds=3)

    report = world.orchestrator.reconcile(SHORT)

    assert (report.errors, report.healed) == (1, 1)
    assert world.store.runs[second].status == RunStatus.SUCCEEDED


def test_stalled_runs_are_repaired_oldest_first(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"a": [], "b": ["a"]}, concurrency="allow"))
    world.store = PagingStore()
    world.orchestrator.store = world.store
    runs = []
    for _ in range(3):
        run_id = world.start()
        world.finish(run_id, "a")
        set_job(world, run_id, "b", status=JobStatus.PENDING, pending_upstreams=1, ready_at=None, submitted_at=None)
        runs.append(run_id)
        world.clock.now += dt.timedelta(minutes=1)
    world.clock.now += dt.timedelta(minutes=20)

    repaired = []
    for _ in range(3):
        assert world.orchestrator.reconcile(replace(SHORT, batch=1)).repaired_runs == 1
        repaired.append(next(r for r in runs if r not in repaired and world.job(r, "b").status == JobStatus.SUBMITTED))
    assert repaired == runs, "with more RUNNING runs than a batch, the one stalled longest goes first"


def test_runs_stuck_creating_are_abandoned_oldest_first(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"a": []}))
    runs = []
    for _ in range(2):
        run_id = world.start()
        world.store.runs[run_id] = replace(world.store.runs[run_id], status=RunStatus.CREATING)
        runs.append(run_id)
        world.clock.now += dt.timedelta(minutes=1)
    world.clock.now += dt.timedelta(minutes=20)
    assert world.orchestrator.reconcile(replace(SHORT, batch=1)).abandoned_runs == 1
    assert [world.store.runs[r].status for r in runs] == [RunStatus.FAILED, RunStatus.CREATING]


def test_the_fake_store_lists_runs_newest_first_like_spanner(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"a": []}))
    first = world.start()
    world.clock.now += dt.timedelta(seconds=1)
    second = world.start()
    assert [r.run_id for r in world.store.list_runs()] == [second, first]
    assert [r.run_id for r in world.store.list_runs(oldest_first=True)] == [first, second]


def test_check_lookups_count_against_the_batch(tmp_path: Path) -> None:
    from baton.domain.naming import check_job_id

    manifest = manifest_of({"a": []})
    manifest["jobs"][0]["destination"] = "sales.orders"
    manifest["jobs"][0]["checks"] = [{"name": f"c{i}", "not_null": "id"} for i in range(3)]
    world = World(tmp_path, manifest)
    run_id = world.start()
    world.finish(run_id, "a")
    for i in range(3):
        job_id = check_job_id("test", run_id, "a", 1, f"c{i}")
        world.submitter.remote[job_id] = RemoteJob(job_id, RemoteState.RUNNING)
    world.clock.now += dt.timedelta(seconds=3)
    world.orchestrator.reconcile(replace(SHORT, batch=2))
    assert len(world.submitter.lookups) == 2


def test_a_lost_submission_that_bigquery_now_refuses_fails_the_job(tmp_path: Path) -> None:
    from baton.errors import JobRefused

    world = World(tmp_path, manifest_of({"a": [], "b": ["a"]}))
    run_id = world.start()  # a is SUBMITTED, but BigQuery never got it (lookup answers None)
    world.submitter.refuse = lambda request: JobRefused(request.job_id, "notFound", "Not found: Dataset p:gone")
    world.clock.now += dt.timedelta(seconds=3)

    report = world.orchestrator.reconcile(SHORT)

    assert report.errors == 0
    a = world.job(run_id, "a")
    assert (a.status, a.error_reason) == (JobStatus.FAILED, "notFound")
    assert world.store.runs[run_id].status == RunStatus.FAILED


def test_a_cancel_stopped_between_its_commits_is_finished_by_the_reconciler(tmp_path: Path) -> None:
    from baton.domain.transitions.cancel import cancel_run

    world = World(tmp_path, manifest_of({"a": [], "b": [], "c": [], "d": ["a"]}))
    run_id = world.start()
    submitted = {key: world.job(run_id, key).bigquery_job_id for key in ("a", "b", "c")}
    # The operator's cancel committed its first chunk (the run and job a), then its process died.
    world.store.transact(lambda tx: cancel_run(tx, run_id, ["a"], world.clock.now))
    assert world.store.runs[run_id].status == RunStatus.CANCELLED
    assert {world.job(run_id, key).status for key in ("b", "c")} == {JobStatus.SUBMITTED}
    report = world.orchestrator.reconcile(SHORT)
    assert (report.cancels_closed, report.errors) == (1, 0)
    assert {world.job(run_id, key).status for key in "abcd"} == {JobStatus.CANCELLED}
    run = world.store.runs[run_id]
    assert (run.open_jobs, run.cancelled_jobs) == (0, 4)
    assert sorted(world.submitter.cancelled) == sorted([submitted["b"], submitted["c"]]), "only what was left open"
    assert world.orchestrator.reconcile(SHORT).cancels_closed == 0, "nothing left to close"


def test_the_reconciler_never_cancels_a_run_a_retry_reopened(tmp_path: Path) -> None:
    from baton.domain.transitions.cancel import cancel_run

    world = World(tmp_path, manifest_of({"a": []}))
    run_id = world.start()
    result = world.store.transact(lambda tx: cancel_run(tx, run_id, ["a"], world.clock.now, only_cancelled=True))
    assert not result.changed and world.store.runs[run_id].status == RunStatus.RUNNING
    assert world.job(run_id, "a").status == JobStatus.SUBMITTED
