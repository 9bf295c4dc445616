"""The catalog of tables Baton wrote, and job statistics from completion events, with in-memory fakes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from baton.domain.naming import bigquery_job_id, check_job_id
from baton.domain.records import CatalogEntry, Completion, JobError, JobStats, JobStatus
from tests.unit.test_engine import NOW, World

STATS = JobStats(
    total_bytes_processed=2048,
    total_bytes_billed=10_485_760,
    total_slot_ms=900,
    rows_affected=42,
    destination_table="proj-1.sales.orders",
    start_time=NOW - dt.timedelta(seconds=30),
    end_time=NOW - dt.timedelta(seconds=2),
)


def manifest(**load: Any) -> dict[str, Any]:
    return {
        "name": "m",
        "jobs": [
            {"key": "load", "sql": "SELECT 1 AS id", "destination": "sales.orders", **load},
            {"key": "script", "sql": "INSERT INTO sales.log VALUES (1)", "needs": ["load"]},
        ],
    }


def finish(world: World, run_id: str, key: str, stats: JobStats, error: JobError | None = None) -> Any:
    job = world.job(run_id, key)
    event = Completion(run_id, key, job.attempt, bigquery_job_id("test", run_id, key, job.attempt), error, stats)
    return world.orchestrator.complete(event)


def test_a_successful_write_is_catalogued_with_its_statistics(tmp_path: Path) -> None:
    world = World(tmp_path, manifest())
    run_id = world.start()
    finish(world, run_id, "load", STATS)
    finish(world, run_id, "script", JobStats(total_bytes_processed=10))
    assert world.job(run_id, "load").stats == STATS
    assert world.store.list_catalog() == [
        CatalogEntry(
            table_ref="proj-1.sales.orders",  # BigQuery's fully qualified name beats the manifest's short one
            run_id=run_id,
            job_key="load",
            bigquery_job_id=bigquery_job_id("test", run_id, "load", 1),
            written_at=STATS.end_time or NOW,
            rows_affected=42,
            bytes_processed=2048,
        )
    ], "a DML script names no destination: no row"


def test_without_bigquerys_name_the_manifest_destination_is_used(tmp_path: Path) -> None:
    world = World(tmp_path, manifest())
    run_id = world.start()
    finish(world, run_id, "load", JobStats())
    (entry,) = world.store.list_catalog()
    assert (entry.table_ref, entry.written_at, entry.rows_affected) == ("sales.orders", NOW, None)


def test_a_later_write_wins_whatever_order_the_events_arrive_in(tmp_path: Path) -> None:
    world = World(tmp_path, manifest())
    first, second = world.start(), world.start()
    finish(world, second, "load", STATS)
    earlier = JobStats(destination_table=STATS.destination_table, end_time=NOW - dt.timedelta(hours=1), rows_affected=1)
    finish(world, first, "load", earlier)
    (entry,) = world.store.list_catalog()
    assert (entry.run_id, entry.rows_affected) == (second, 42)


def test_listing_the_catalog_filters_by_prefix_and_limits(tmp_path: Path) -> None:
    world = World(tmp_path, manifest())
    for table in ("p-1.sales.b", "p-1.sales.a", "p-1.hr.staff"):
        run_id = world.start()
        finish(world, run_id, "load", JobStats(destination_table=table))
    assert [e.table_ref for e in world.store.list_catalog()] == ["p-1.hr.staff", "p-1.sales.a", "p-1.sales.b"]
    assert [e.table_ref for e in world.store.list_catalog(prefix="p-1.sales.")] == ["p-1.sales.a", "p-1.sales.b"]
    assert [e.table_ref for e in world.store.list_catalog(limit=1)] == ["p-1.hr.staff"]


def test_statistics_are_kept_when_a_job_fails_or_is_retried(tmp_path: Path) -> None:
    world = World(tmp_path, manifest(retry={"max_attempts": 2}))
    run_id = world.start()
    partial = JobStats(total_bytes_billed=10_485_760, total_slot_ms=77, start_time=NOW, end_time=NOW)
    finish(world, run_id, "load", partial, JobError("backendError", "try again"))
    assert (world.job(run_id, "load").attempt, world.job(run_id, "load").stats) == (2, partial)
    finish(world, run_id, "load", partial, JobError("invalidQuery", "no"))
    job = world.job(run_id, "load")
    assert (job.status, job.stats, job.error) == (JobStatus.FAILED, partial, "invalidQuery: no")
    assert world.store.list_catalog() == []


def test_a_checked_table_is_catalogued_once_its_checks_pass(tmp_path: Path) -> None:
    from baton.domain.records import CheckCompletion

    world = World(tmp_path, manifest(checks=[{"name": "ids_present", "not_null": "id"}]))
    run_id = world.start()
    finish(world, run_id, "load", STATS)
    assert world.store.list_catalog() == [], "still CHECKING"
    job_id = check_job_id("test", run_id, "load", 1, "ids_present")
    world.orchestrator.complete(CheckCompletion(run_id, "load", 1, "ids_present", job_id, 0))
    (entry,) = world.store.list_catalog()
    assert (entry.table_ref, entry.bigquery_job_id, entry.bytes_processed) == (
        "proj-1.sales.orders",
        bigquery_job_id("test", run_id, "load", 1),
        2048,
    ), "the job's own statistics, not the check's"
