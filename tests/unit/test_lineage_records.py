"""What each job read and wrote, and the written table's size: from the audit entry into the catalog."""

from __future__ import annotations

import copy
from pathlib import Path

from baton.domain.naming import bigquery_job_id
from baton.domain.records import Completion, JobStats
from baton.entrypoints.audit_log import Ignored, IgnoreReason, ParsedCompletion, parse_log_entry
from baton.errors import TransientError
from baton.service.ports import TableSize
from tests.fixtures import load_fixture
from tests.unit.test_engine import World

WRITTEN = "proj-1.sales.orders"


def test_referenced_tables_are_read_from_the_audit_entry_and_anonymous_ones_left_out() -> None:
    entry = load_fixture("audit_log/job_done_success")
    query = entry["protoPayload"]["metadata"]["jobChange"]["job"]["jobStats"]["queryStats"]
    query["referencedTables"] = [
        "projects/p/datasets/landing/tables/orders",
        "projects/p/datasets/_0a1b/tables/anon",
        "projects/p/datasets/landing/tables/orders",
        "projects/q/datasets/ref/tables/countries",
    ]
    parsed = parse_log_entry(entry)
    assert isinstance(parsed, ParsedCompletion)
    assert parsed.completion.stats.referenced_tables == ("p.landing.orders", "q.ref.countries")
    broken = copy.deepcopy(entry)
    broken["protoPayload"]["metadata"]["jobChange"]["job"]["jobStats"]["queryStats"]["referencedTables"] = ["orders"]
    ignored = parse_log_entry(broken)
    assert isinstance(ignored, Ignored) and ignored.reason == IgnoreReason.MALFORMED
    assert "queryStats.referencedTables[0]" in ignored.message
    stats = parsed.completion.stats
    assert JobStats.from_json(stats.to_json()) == stats, "stored with the stats JSON"


def world_with_a_write(tmp_path: Path) -> tuple[World, str, Completion]:
    world = World(tmp_path, {"name": "m", "jobs": [{"key": "load", "sql": "SELECT 1", "destination": "sales.orders"}]})
    run_id = world.start()
    stats = JobStats(rows_affected=3, destination_table=WRITTEN, referenced_tables=("proj-1.landing.raw",))
    return world, run_id, Completion(run_id, "load", 1, bigquery_job_id("test", run_id, "load", 1), None, stats)


def test_the_catalog_keeps_the_tables_size_after_the_write_and_what_the_job_read(tmp_path: Path) -> None:
    world, run_id, event = world_with_a_write(tmp_path)
    world.submitter.tables[WRITTEN] = TableSize(rows=1200, bytes=98_304)
    world.orchestrator.complete(event)
    (entry,) = world.store.list_catalog()
    assert (entry.table_ref, entry.table_rows, entry.table_bytes) == (WRITTEN, 1200, 98_304)
    assert entry.upstream_tables == ("proj-1.landing.raw",)
    assert world.submitter.sized == [WRITTEN]
    stats = world.job(run_id, "load").stats
    assert (stats.table_rows, stats.table_bytes) == (1200, 98_304)


def test_a_size_that_cannot_be_read_leaves_the_write_recorded_without_it(tmp_path: Path) -> None:
    world, _, event = world_with_a_write(tmp_path)
    world.submitter.table_size = lambda table: (_ for _ in ()).throw(TransientError("503"))  # type: ignore[method-assign]
    world.orchestrator.complete(event)
    (entry,) = world.store.list_catalog()
    assert (entry.table_rows, entry.table_bytes, entry.rows_affected) == (None, None, 3)
