"""What a completion reads and writes on the emulator: dependents guessed from the run's last completion, and
updates cut to the columns a transition changed."""

from __future__ import annotations

from typing import Any

import pytest

from baton.adapters.spanner_mutations import row_mutations
from baton.adapters.spanner_rows import RUN_COLUMNS
from baton.adapters.spanner_store import JOB_UPDATE, SpannerRunStore
from baton.domain.records import JobStatus
from tests.integration.test_spanner_store import complete, start

pytestmark = pytest.mark.integration


def test_a_guess_from_another_job_of_the_run_changes_nothing_it_releases(spanner_database: Any, tmp_path: Any) -> None:
    store = SpannerRunStore(spanner_database)
    run_id = start(store, {"a": [], "b": [], "x": ["a"], "y": ["b"], "z": ["x", "y"]}, tmp_path)
    assert [job.job_key for job in complete(store, run_id, "a").ready] == ["x"]
    # b's event reads x's row too (a's dependent, the guess), then uses only its own dependent.
    assert [job.job_key for job in complete(store, run_id, "b").ready] == ["y"]
    assert store.last_rows_read == 4, "b and the guessed x in one read, then the run and y"
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
        whole_rows = 2 * row_mutations("RunJobs", JOB_UPDATE) + row_mutations("Runs", (*RUN_COLUMNS, "UpdatedAt"))
        assert 0 < store.largest_commit < whole_rows / 2, "only the changed columns, and no index the update leaves alone"
    sink = next(job for job in store.list_jobs(run_id) if job.job_key == "sink")
    assert (sink.status, sink.pending_upstreams, sink.spec.needs) == (JobStatus.PENDING, 1, tuple(siblings))
    assert [job.job_key for job in complete(store, run_id, siblings[-1]).ready] == ["sink"]
    run = store.get_run(run_id)
    assert run is not None and (run.succeeded_jobs, run.open_jobs) == (4, 1)
