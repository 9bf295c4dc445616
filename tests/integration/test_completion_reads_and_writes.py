"""What a completion reads and writes on the emulator: dependents guessed from the run's last completion, and
updates cut to the columns a transition changed."""

from __future__ import annotations

from typing import Any

import pytest

from baton.adapters.spanner_mutations import row_mutations
from baton.adapters.spanner_rows import RUN_COLUMNS, RUN_STATE_KEY, run_from_state
from baton.adapters.spanner_store import JOB_UPDATE, SpannerRunStore
from baton.domain.records import JobStatus
from tests.integration.test_spanner_store import NOW, complete, start

pytestmark = pytest.mark.integration


def test_a_guess_from_another_job_of_the_run_changes_nothing_it_releases(spanner_database: Any, tmp_path: Any) -> None:
    store = SpannerRunStore(spanner_database)
    run_id = start(store, {"a": [], "b": [], "x": ["a"], "y": ["b"], "z": ["x", "y"]}, tmp_path)
    assert [job.job_key for job in complete(store, run_id, "a").ready] == ["x"]
    # b's event reads x's row too (a's dependent, the guess), then uses only its own dependent.
    assert [job.job_key for job in complete(store, run_id, "b").ready] == ["y"]
    assert store.last_rows_read == 4, "b, the guessed x and the run's state row in one read, then y"
    assert store.last_reads == 2
    jobs = {job.job_key: job for job in store.list_jobs(run_id)}
    assert (jobs["x"].status, jobs["x"].pending_upstreams) == (JobStatus.READY, 0)
    assert (jobs["z"].status, jobs["z"].pending_upstreams) == (JobStatus.PENDING, 2)


def test_fan_in_siblings_count_the_sink_down_with_small_updates(spanner_database: Any, tmp_path: Any) -> None:
    store = SpannerRunStore(spanner_database)
    siblings = [f"s{index}" for index in range(4)]
    run_id = start(store, {**{key: [] for key in siblings}, "sink": siblings}, tmp_path)
    for key in siblings[:-1]:
        store.largest_commit = 0
        assert complete(store, run_id, key).ready == []
        assert store.last_rows_read == 3, "the job, the run, the sink: the sink read with the job after the first"
        if key != siblings[0]:
            assert store.last_reads == 1, "one round trip: the job, the sink and the run's state row"
        whole_rows = 3 * row_mutations("RunJobs", JOB_UPDATE) + row_mutations("Runs", (*RUN_COLUMNS, "UpdatedAt"))
        assert 0 < store.largest_commit < whole_rows / 2, "only the changed columns, and no index the update leaves alone"
    sink = next(job for job in store.list_jobs(run_id) if job.job_key == "sink")
    assert (sink.status, sink.pending_upstreams, sink.spec.needs) == (JobStatus.PENDING, 1, tuple(siblings))
    assert [job.job_key for job in complete(store, run_id, siblings[-1]).ready] == ["sink"]
    run = store.get_run(run_id)
    assert run is not None and (run.succeeded_jobs, run.open_jobs) == (4, 1)


def state_row(store: SpannerRunStore, run_id: str) -> tuple[str, Any] | None:
    """The run's state row as Spanner holds it: (Status, the run it holds)."""
    from google.cloud import spanner

    keys = spanner.KeySet(keys=[[run_id, RUN_STATE_KEY]])
    with store.database.snapshot() as snapshot:
        rows = list(snapshot.read("RunJobs", ("Status", "RunState"), keys))
    return (rows[0][0], run_from_state(rows[0][1])) if rows else None


def assert_in_step(store: SpannerRunStore, run_id: str) -> None:
    run = store.get_run(run_id)
    assert run is not None
    assert state_row(store, run_id) == ("RUN" if not run.status.terminal else str(run.status), run)


def test_the_run_state_row_stays_in_step_with_the_runs_row(spanner_database: Any, tmp_path: Any) -> None:
    from baton.domain.transitions.cancel import cancel_run
    from baton.domain.transitions.hold import hold_run, release_run

    store = SpannerRunStore(spanner_database)
    run_id = start(store, {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}, tmp_path)
    assert_in_step(store, run_id)
    for key in ("a", "b"):
        complete(store, run_id, key)
        assert_in_step(store, run_id)
    store.transact(lambda tx: hold_run(tx, run_id, NOW, "a look first"))  # reads the Runs row, not the state row
    assert_in_step(store, run_id)
    store.transact(lambda tx: release_run(tx, run_id))
    complete(store, run_id, "c")
    complete(store, run_id, "d")
    assert_in_step(store, run_id)
    assert state_row(store, run_id) is not None and state_row(store, run_id)[0] == "SUCCEEDED"  # type: ignore[index]
    other = start(store, {"a": [], "b": ["a"]}, tmp_path)
    store.transact(lambda tx: cancel_run(tx, other, ["a", "b"], NOW))
    assert_in_step(store, other)
    assert all(job.job_key for job in store.list_jobs(run_id)), "the state row is not a job"


def test_a_run_without_a_state_row_reads_its_runs_row_and_gets_one(spanner_database: Any, tmp_path: Any) -> None:
    """Runs created before spanner_schema/0015 have no state row: their first completion writes it."""
    from google.cloud import spanner

    store = SpannerRunStore(spanner_database)
    run_id = start(store, {"a": [], "b": [], "sink": ["a", "b"]}, tmp_path)
    with store.database.batch() as batch:
        batch.delete("RunJobs", spanner.KeySet(keys=[[run_id, RUN_STATE_KEY]]))
    assert state_row(store, run_id) is None
    complete(store, run_id, "a")
    assert store.last_reads == 3, "the job, then its dependent and the Runs row side by side"
    assert_in_step(store, run_id)
    assert [job.job_key for job in complete(store, run_id, "b").ready] == ["sink"]
    assert store.last_reads == 1
    assert_in_step(store, run_id)
