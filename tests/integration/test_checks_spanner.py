"""Checks, job statistics, the catalog and retry against the real Spanner emulator, through the orchestrator."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from baton.adapters.spanner_store import SpannerRunStore
from baton.domain.naming import bigquery_job_id, check_job_id
from baton.domain.records import CheckCompletion, CheckStatus, Completion, JobError, JobStats, JobStatus, RunStatus
from baton.domain.transitions.checks import CHECK_FAILED_REASON
from baton.domain.transitions.completion import Verdict
from baton.manifests.loading import ManifestRepository
from baton.service.orchestrator import Orchestrator
from tests.fakes import RecordingPublisher, RecordingSubmitter

pytestmark = pytest.mark.integration
NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
MANIFEST = {
    "name": "trusted",
    "params": {"run_date": {"type": "DATE"}},
    "jobs": [
        {
            "key": "orders",
            "sql": "SELECT 1 AS id",
            "destination": "sales.orders",
            "checks": [
                {"name": "ids_present", "not_null": "id"},
                {"name": "plenty", "row_count_above": 100, "severity": "warn"},
            ],
        },
        {"key": "report", "sql": "SELECT 2", "destination": "sales.report", "needs": ["orders"]},
        {"key": "notify", "sql": "INSERT INTO sales.log VALUES (@run_date)", "needs": ["report"]},
    ],
}


class Harness:
    def __init__(self, database: Any, tmp_path: Path) -> None:
        (tmp_path / "trusted.yaml").write_text(yaml.safe_dump(MANIFEST))
        self.store = SpannerRunStore(database)
        self.submitter = RecordingSubmitter()
        self.events = RecordingPublisher()
        self.orchestrator = Orchestrator(
            self.store, self.submitter, ManifestRepository(tmp_path), "test", events=self.events, clock=lambda: NOW
        )

    def jobs(self, run_id: str) -> dict[str, Any]:
        return {job.job_key: job for job in self.store.list_jobs(run_id)}

    def finish(self, run_id: str, key: str, stats: JobStats, error: JobError | None = None) -> Any:
        attempt = self.jobs(run_id)[key].attempt
        event = Completion(run_id, key, attempt, bigquery_job_id("test", run_id, key, attempt), error, stats)
        return self.orchestrator.complete(event)

    def check(self, run_id: str, name: str, rows: int, attempt: int = 1) -> Any:
        job_id = check_job_id("test", run_id, "orders", attempt, name)
        return self.orchestrator.complete(CheckCompletion(run_id, "orders", attempt, name, job_id, rows))


def stats(table: str | None, rows: int, seconds: int = 0) -> JobStats:
    return JobStats(
        total_bytes_processed=1000 + rows,
        total_bytes_billed=10_485_760,
        total_slot_ms=321,
        rows_affected=rows,
        destination_table=table,
        start_time=NOW - dt.timedelta(seconds=60),
        end_time=NOW - dt.timedelta(seconds=seconds),
    )


def test_statistics_are_stored_on_success_and_on_failure(spanner_database: Any, tmp_path: Path) -> None:
    h = Harness(spanner_database, tmp_path)
    run_id = h.orchestrator.start("trusted", {"run_date": "2026-11-27"}).run_id
    succeeded = stats("proj-1.sales.orders", 5)
    h.finish(run_id, "orders", succeeded)
    h.check(run_id, "ids_present", 0)
    h.check(run_id, "plenty", 0)
    failed = JobStats(total_bytes_billed=0, total_slot_ms=12, start_time=NOW - dt.timedelta(seconds=3), end_time=NOW)
    h.finish(run_id, "report", failed, JobError("invalidQuery", "Unrecognized name: x"))
    jobs = h.jobs(run_id)
    assert jobs["orders"].stats == succeeded
    assert (jobs["report"].status, jobs["report"].stats, jobs["report"].error) == (
        JobStatus.FAILED,
        failed,
        "invalidQuery: Unrecognized name: x",
    )
    assert jobs["notify"].status == JobStatus.SKIPPED


def test_checks_gate_the_job_in_spanner_and_their_outcomes_are_readable(spanner_database: Any, tmp_path: Path) -> None:
    h = Harness(spanner_database, tmp_path)
    run_id = h.orchestrator.start("trusted", {"run_date": "2026-11-27"}).run_id
    h.finish(run_id, "orders", stats("proj-1.sales.orders", 5))
    orders = h.jobs(run_id)["orders"]
    assert (orders.status, orders.pending_checks, orders.checks_started_at) == (JobStatus.CHECKING, 2, NOW)
    assert [(c.name, c.status) for c in h.store.list_checks(run_id)] == [
        ("ids_present", CheckStatus.PENDING),
        ("plenty", CheckStatus.PENDING),
    ]
    assert h.check(run_id, "plenty", 5).verdict == Verdict.RECORDED
    # The job's row names its one dependent, whose row comes with the run's: read ahead, side by side.
    assert h.store.last_rows_read == 4, "job, run, the dependent, check by key: nothing else while checks are pending"
    assert h.check(run_id, "plenty", 5).verdict == Verdict.DUPLICATE
    assert h.check(run_id, "ids_present", 2).verdict == Verdict.RECORDED
    orders = h.jobs(run_id)["orders"]
    assert (orders.status, orders.error_reason, orders.error) == (
        JobStatus.FAILED,
        CHECK_FAILED_REASON,
        "check 'ids_present' failed: 2 offending row(s)",
    )
    outcomes = {c.name: c for c in h.store.list_checks(run_id, "orders")}
    assert (outcomes["ids_present"].status, outcomes["ids_present"].rows) == (CheckStatus.FAILED, 2)
    assert (outcomes["plenty"].status, outcomes["plenty"].severity) == (CheckStatus.FAILED, "warn")
    assert outcomes["ids_present"].bigquery_job_id == check_job_id("test", run_id, "orders", 1, "ids_present")
    run = h.store.get_run(run_id)
    assert run is not None and (run.status, run.failed_jobs, run.skipped_jobs) == (RunStatus.FAILED, 1, 2)
    assert h.store.list_catalog() == []


def test_retry_continues_the_run_and_the_catalog_records_each_table(spanner_database: Any, tmp_path: Path) -> None:
    h = Harness(spanner_database, tmp_path)
    run_id = h.orchestrator.start("trusted", {"run_date": "2026-11-27"}).run_id
    h.finish(run_id, "orders", stats("proj-1.sales.orders", 5))
    h.check(run_id, "ids_present", 1)
    h.check(run_id, "plenty", 0)
    assert h.store.get_run(run_id).status == RunStatus.FAILED  # type: ignore[union-attr]

    h.store.jobs_per_commit = 1  # three jobs: three commits, the run reopened in the last
    run = h.orchestrator.retry(run_id)
    assert (run.status, run.open_jobs, run.failed_jobs, run.skipped_jobs) == (RunStatus.RUNNING, 3, 0, 0)
    jobs = h.jobs(run_id)
    assert {k: (j.status, j.attempt, j.pending_upstreams) for k, j in jobs.items()} == {
        "orders": (JobStatus.SUBMITTED, 2, 0),
        "report": (JobStatus.PENDING, 2, 1),
        "notify": (JobStatus.PENDING, 2, 1),
    }
    assert h.submitter.requests[-1].job_id == bigquery_job_id("test", run_id, "orders", 2)

    h.finish(run_id, "orders", stats("proj-1.sales.orders", 4, seconds=1))
    h.check(run_id, "ids_present", 0, attempt=2)
    h.check(run_id, "plenty", 0, attempt=2)
    h.finish(run_id, "report", stats("proj-1.sales.report", 2))
    h.finish(run_id, "notify", stats(None, 0))
    final = h.store.get_run(run_id)
    assert final is not None and (final.status, final.succeeded_jobs) == (RunStatus.SUCCEEDED, 3)
    catalog = h.store.list_catalog()
    assert [(e.table_ref, e.job_key, e.rows_affected, e.bigquery_job_id) for e in catalog] == [
        ("proj-1.sales.orders", "orders", 4, bigquery_job_id("test", run_id, "orders", 2)),
        ("proj-1.sales.report", "report", 2, bigquery_job_id("test", run_id, "report", 2)),
    ]
    assert catalog[0].written_at == NOW - dt.timedelta(seconds=1) and catalog[0].bytes_processed == 1004
    assert [e.table_ref for e in h.store.list_catalog(prefix="proj-1.sales.rep")] == ["proj-1.sales.report"]
    assert [(c.attempt, c.name, c.status) for c in h.store.list_checks(run_id)] == [
        (1, "ids_present", CheckStatus.FAILED),
        (1, "plenty", CheckStatus.PASSED),
        (2, "ids_present", CheckStatus.PASSED),
        (2, "plenty", CheckStatus.PASSED),
    ]
    assert h.events.types() == ["run.started", "job.failed", "run.failed", "run.retried", "run.succeeded"]
