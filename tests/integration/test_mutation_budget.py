"""The store counts each commit's mutations as Spanner does, refuses one over its budget, and pages edges."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from baton.adapters.spanner_migrations import all_statements
from baton.adapters.spanner_mutations import GENERATED, INDEXES, MUTATION_LIMIT, PRIMARY_KEYS, row_mutations
from baton.adapters.spanner_store import JOB_UPDATE, SpannerRunStore
from baton.domain.records import JobStatus
from baton.errors import CommitTooLarge
from tests.integration.test_spanner_store import start

pytestmark = pytest.mark.integration


def test_the_counting_tables_mirror_the_ddl() -> None:
    ddl = "\n".join(all_statements())
    tables = {
        match["table"]: tuple(column.strip() for column in match["key"].split(","))
        for match in re.finditer(r"CREATE TABLE (?P<table>\w+) \((?:.|\n)*?\) PRIMARY KEY \((?P<key>[^)]*)\)", ddl)
    }
    assert tables == PRIMARY_KEYS
    indexes: dict[str, dict[str, tuple[str, ...]]] = {}
    for statement in all_statements():  # in order: a later DROP INDEX removes an earlier one
        created = re.match(r"CREATE (?:NULL_FILTERED )?INDEX (?P<name>\w+) ON (?P<table>\w+)\s*\((?P<columns>[^)]*)\)", statement)
        if created:
            columns = tuple(part.split()[0] for part in created["columns"].split(","))
            indexes.setdefault(created["table"], {})[created["name"]] = columns
        dropped = re.match(r"DROP INDEX (\w+)", statement)
        if dropped:
            for found in indexes.values():
                found.pop(dropped.group(1), None)
    assert {table: tuple(found.items()) for table, found in indexes.items()} == {
        table: tuple(found) for table, found in INDEXES.items()
    }
    generated = {
        (match["table"], match["column"])
        for statement in all_statements()
        for match in [re.match(r"ALTER TABLE (?P<table>\w+) ADD COLUMN (?P<column>\w+) .* AS \(.*\) STORED$", statement)]
        if match
    }
    assert generated == {(table, column) for table, columns in GENERATED.items() for column in columns}


def test_a_job_update_costs_its_columns_and_its_index_entries() -> None:
    # Its columns and the commit timestamp, the generated OpenStatus and OpenDeadline, the open-jobs index entry
    # (OpenStatus, RunId, JobKey) removed and written (2 x 3), and the deadline index entry (DeadlineShard,
    # OpenDeadline, RunId, JobKey) removed and written (2 x 4).
    assert row_mutations("RunJobs", JOB_UPDATE) == len(JOB_UPDATE) + 2 + 6 + 8
    assert row_mutations("RunJobs", ("RunId", "JobKey", "Error")) == 3, "no indexed column: no index entry"


def test_a_run_update_costs_its_columns_and_its_index_entries() -> None:
    from baton.adapters.spanner_rows import RUN_COLUMNS

    # Its columns and the commit timestamp, the generated OpenStatus and OpenDeadline, and the entries of
    # RunsByManifest (ManifestName, CreatedAt, RunId), OpenRuns (OpenStatus, RunId), RunsByDeadline
    # (DeadlineShard, OpenDeadline, RunId), OpenRunsByQueue (Queue, OpenStatus, CreatedAt, RunId) and
    # RunsByBackfill (BackfillId, CreatedAt, RunId), each removed and written.
    indexes = 2 * 3 + 2 * 2 + 2 * 3 + 2 * 4 + 2 * 3
    assert row_mutations("Runs", (*RUN_COLUMNS, "UpdatedAt")) == len(RUN_COLUMNS) + 1 + 2 + indexes


def test_a_commit_over_the_budget_is_refused_and_writes_nothing(spanner_database: Any, tmp_path: Any) -> None:
    store = SpannerRunStore(spanner_database, mutation_budget=2_000)
    run_id = start(store, {f"j{index:03d}": [] for index in range(100)}, tmp_path)
    jobs = store.list_jobs(run_id)
    per_job = row_mutations("RunJobs", JOB_UPDATE)
    assert len(jobs) * per_job > 2_000

    def touch_all(tx: Any) -> None:
        for job in jobs:
            tx.put_job(replace(job, error="touched"))

    with pytest.raises(CommitTooLarge, match=r"over the budget of 2000"):
        store.transact(touch_all)
    assert all(job.error is None for job in store.list_jobs(run_id))
    assert store.jobs_per_commit * per_job <= 2_000
    assert SpannerRunStore(spanner_database).jobs_per_commit * per_job <= MUTATION_LIMIT - 2_000


def test_run_creation_commits_stay_within_the_budget(spanner_database: Any, tmp_path: Any) -> None:
    store = SpannerRunStore(spanner_database, mutation_budget=5_000)
    run_id = start(store, {"root": [], **{f"m{index:03d}": ["root"] for index in range(300)}}, tmp_path)
    assert len(store.list_jobs(run_id)) == 301
    assert 0 < store.largest_commit <= 5_000


def test_dependents_are_read_in_key_order_a_page_at_a_time(spanner_database: Any, tmp_path: Any) -> None:
    store = SpannerRunStore(spanner_database)
    run_id = start(store, {"root": [], **{f"m{index:03d}": ["root"] for index in (5, 1, 9, 3, 7)}}, tmp_path)
    first = store.transact(lambda tx: tx.get_dependents(run_id, "root", limit=2))
    rest = store.transact(lambda tx: tx.get_dependents(run_id, "root", after=first[-1]))
    assert first == ["m001", "m003"] and rest == ["m005", "m007", "m009"]
    assert {job.status for job in store.get_jobs(run_id, ["m001", "root"])} == {JobStatus.PENDING, JobStatus.READY}
