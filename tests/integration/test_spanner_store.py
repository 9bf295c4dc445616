"""The Spanner store against the real emulator: transitions, point reads, batching, migrations."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from baton.adapters.spanner_migrations import applied_versions, load_migrations, migrate
from baton.adapters.spanner_store import DEPENDENT_KEYS_ON_ROW, SpannerRunStore
from baton.domain.naming import new_run_id
from baton.domain.records import Completion, JobStatus, RunStatus
from baton.domain.transitions.completion import apply_completion
from baton.domain.transitions.start import activate_run, plan_run
from baton.errors import RunExists
from baton.manifests.loading import parse_manifest

pytestmark = pytest.mark.integration
NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def manifest(edges: dict[str, list[str]], tmp_path: Any) -> Any:
    jobs = [{"key": k, "sql": "SELECT @run_date", "needs": v} for k, v in edges.items()]
    return parse_manifest({"name": "m", "params": {"run_date": {"type": "DATE"}}, "jobs": jobs}, "m.yaml", tmp_path)


def start(store: SpannerRunStore, edges: dict[str, list[str]], tmp_path: Any) -> str:
    m = manifest(edges, tmp_path)
    plan = plan_run(m, m.bind_params({}, NOW.date()), "test", new_run_id(), NOW)
    store.create_run(plan)
    assert store.transact(lambda tx: activate_run(tx, plan.run.run_id)) is not None
    return plan.run.run_id


def complete(store: SpannerRunStore, run_id: str, key: str) -> Any:
    event = Completion(run_id, key, 1, f"baton_test_{run_id}_{key}_1")
    return store.transact(lambda tx: apply_completion(tx, event, NOW, store.jobs_per_commit))


def test_migrations_are_recorded_and_safe_to_run_twice(spanner_database: Any) -> None:
    assert applied_versions(spanner_database) == {m.version for m in load_migrations()}
    assert migrate(spanner_database, load_migrations()) == []


def test_a_diamond_round_trips_through_spanner(spanner_database: Any, tmp_path: Any) -> None:
    store = SpannerRunStore(spanner_database)
    run_id = start(store, {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}, tmp_path)
    run = store.get_run(run_id)
    assert run is not None
    assert (run.status, run.open_jobs, run.params["run_date"].value) == (RunStatus.RUNNING, 4, "2026-11-27")
    assert [j.job_key for j in complete(store, run_id, "a").ready] == ["b", "c"]
    complete(store, run_id, "b")
    assert [j.job_key for j in complete(store, run_id, "c").ready] == ["d"]
    assert complete(store, run_id, "d").run_finished
    jobs = {j.job_key: j for j in store.list_jobs(run_id)}
    assert {j.status for j in jobs.values()} == {JobStatus.SUCCEEDED}
    assert jobs["d"].spec.sql == "SELECT @run_date"
    assert store.list_runs(manifest="m")[0].status == RunStatus.SUCCEEDED
    # The open-status indexes (spanner_schema/0005) drop a row once it is terminal; terminal lists still answer.
    assert store.list_runs(status=RunStatus.RUNNING) == []
    assert [r.run_id for r in store.list_runs(status=RunStatus.SUCCEEDED)] == [run_id]
    assert all(store.jobs_page(status, 10) == ([], None) for status in (JobStatus.READY, JobStatus.SUBMITTED))


def test_writing_a_run_whose_id_is_taken_says_so_and_writes_nothing(spanner_database: Any, tmp_path: Any) -> None:
    """A backfill's date has one run ID (domain/naming.backfill_run_id): the second writer must learn it lost."""
    store = SpannerRunStore(spanner_database)
    m = manifest({"a": [], "b": ["a"]}, tmp_path)
    plan = plan_run(m, m.bind_params({}, NOW.date()), "test", new_run_id(), NOW)
    store.create_run(plan)
    other = plan_run(m, m.bind_params({"run_date": "2026-01-01"}, NOW.date()), "test", plan.run.run_id, NOW)
    with pytest.raises(RunExists, match=plan.run.run_id):
        store.create_run(other)
    run = store.get_run(plan.run.run_id)
    assert run is not None and run.params["run_date"].value == "2026-11-27", "the first run's row, untouched"
    assert [job.job_key for job in store.list_jobs(plan.run.run_id)] == ["a", "b"]


def test_completion_reads_do_not_grow_with_the_run(spanner_database: Any, tmp_path: Any) -> None:
    store = SpannerRunStore(spanner_database)
    reads = []
    for width in (5, 400):
        edges = {"root": [], "child": ["root"], **{f"other{i}": [] for i in range(width)}}
        run_id = start(store, edges, tmp_path)
        complete(store, run_id, "root")
        reads.append(store.last_rows_read)
    assert reads[0] == reads[1] == 3, "job (its row names its dependent), run, the dependent"


@pytest.mark.parametrize("width", [DEPENDENT_KEYS_ON_ROW, DEPENDENT_KEYS_ON_ROW + 1])
def test_dependents_kept_on_the_row_or_read_from_the_edges_release_alike(
    spanner_database: Any, tmp_path: Any, width: int
) -> None:
    store = SpannerRunStore(spanner_database)
    middle = [f"m{i:03d}" for i in range(width)]
    run_id = start(store, {"root": [], **{key: ["root"] for key in middle}, "sink": middle}, tmp_path)
    assert [job.job_key for job in complete(store, run_id, "root").ready] == middle
    for key in middle[:-1]:
        assert complete(store, run_id, key).ready == []
    assert [job.job_key for job in complete(store, run_id, middle[-1]).ready] == ["sink"]
    assert store.transact(lambda tx: tx.get_dependents(run_id, "root", after=middle[1], limit=2)) == middle[2:4]


def test_large_runs_are_written_in_commits_under_the_mutation_limit(spanner_database: Any, tmp_path: Any) -> None:
    store = SpannerRunStore(spanner_database)
    # 6,000 jobs x 16 cells is past 80,000 mutations: one commit could not hold them.
    edges = {"root": [], **{f"j{i:05d}": ["root"] for i in range(3000)}, **{f"k{i:05d}": [] for i in range(3000)}}
    run_id = start(store, edges, tmp_path)
    run = store.get_run(run_id)
    assert run is not None and run.total_jobs == 6001
    assert len(store.list_jobs(run_id)) == 6001
    assert store.transact(lambda tx: len(tx.get_dependents(run_id, "root"))) == 3000


def test_run_events_wait_in_the_outbox_committed_with_their_transition(spanner_database: Any, tmp_path: Any) -> None:
    from baton.domain.run_events import run_event
    from baton.service.events import record

    store = SpannerRunStore(spanner_database)
    run_id = start(store, {"a": []}, tmp_path)

    def activated_again(tx: Any) -> str:
        run = tx.get_run(run_id)
        [event] = record(tx, [run_event("run.started", run, NOW)])
        return str(event["event_id"])

    event_id = store.transact(activated_again)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    [waiting] = [e for e in store.unpublished_events(100, later) if e["run_id"] == run_id]
    assert (waiting["event_id"], waiting["type"], waiting["counts"]["total"]) == (event_id, "run.started", 1)
    assert not [e for e in store.unpublished_events(100, NOW) if e["run_id"] == run_id], "written after NOW"
    store.forget_events([(run_id, event_id)])
    assert not [e for e in store.unpublished_events(100, later) if e["run_id"] == run_id]


def test_jobs_past_their_deadline_are_found_through_the_deadline_index(spanner_database: Any, tmp_path: Any) -> None:
    import dataclasses

    from baton.domain.transitions.submission import mark_submitted

    store = SpannerRunStore(spanner_database)
    m = manifest({"a": [], "b": []}, tmp_path)
    timed = dataclasses.replace(m, jobs=tuple(dataclasses.replace(job, timeout_seconds=60) for job in m.jobs[:1]) + m.jobs[1:])
    plan = plan_run(timed, timed.bind_params({}, NOW.date()), "test", new_run_id(), NOW)
    store.create_run(plan)
    store.transact(lambda tx: activate_run(tx, plan.run.run_id))
    store.transact(lambda tx: mark_submitted(tx, plan.run.run_id, [("a", 1), ("b", 1)], NOW))
    assert store.jobs_past_deadline(NOW + dt.timedelta(seconds=59), 10) == []
    late = store.jobs_past_deadline(NOW + dt.timedelta(seconds=61), 10)
    assert [(job.job_key, job.deadline) for job in late] == [("a", NOW + dt.timedelta(seconds=60))], "b has no timeout"


def test_runs_past_their_deadline_are_found_through_the_run_deadline_index_while_running(
    spanner_database: Any, tmp_path: Any
) -> None:
    from baton.domain.transitions.cancel import cancel_run
    from baton.domain.transitions.hold import hold_run
    from baton.domain.transitions.run_timeout import with_run_timeout

    store = SpannerRunStore(spanner_database)
    m = manifest({"a": []}, tmp_path)
    runs = []
    for timeout in (60, None, 60):
        plan = with_run_timeout(plan_run(m, m.bind_params({}, NOW.date()), "test", new_run_id(), NOW), timeout)
        store.create_run(plan)
        store.transact(lambda tx, run_id=plan.run.run_id: activate_run(tx, run_id))  # type: ignore[misc]
        runs.append(plan.run.run_id)
    timed, untimed, ended = runs
    store.transact(lambda tx: cancel_run(tx, ended, ["a"], NOW))  # a finished run leaves the index

    def found(at: dt.datetime) -> list[str]:
        return [run.run_id for run in store.runs_past_deadline(at, 100) if run.run_id in runs]

    assert found(NOW + dt.timedelta(seconds=59)) == []
    assert found(NOW + dt.timedelta(seconds=61)) == [timed], "no timeout, or no longer RUNNING: not indexed"
    store.transact(lambda tx: hold_run(tx, timed, NOW, "migration"))
    held = store.get_run(timed)
    assert held is not None
    assert (held.held_at, held.hold_reason, held.timeout_seconds, held.deadline) == (
        NOW,
        "migration",
        60,
        NOW + dt.timedelta(seconds=60),
    )
    assert store.get_run(untimed) is not None and store.get_run(untimed).deadline is None  # type: ignore[union-attr]
