"""Trust rules end to end on the local stack: a failing check stops the run, fixed data and `retry` finish it.

Every check is a BigQuery job of its own whose verdict arrives as its own audit-log
event; the run events are read back from the run-events topic as an alerting
subscriber would.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import uuid
from typing import Any

import pytest
from google.cloud import bigquery

from baton import bootstrap
from baton.adapters.spanner_store import SpannerRunStore
from baton.config import Settings
from baton.domain.naming import bigquery_job_id
from baton.domain.records import CheckStatus, JobStatus, RunStatus
from baton.domain.timing import ReconcilePolicy
from baton.domain.transitions.checks import CHECK_FAILED_REASON
from baton.service.orchestrator import Orchestrator
from devstack.audit_bridge import ChaosPolicy, DeliverOnce, entry_job_id
from devstack.pubsub_admin import admin_clients, ensure_pull_subscription, pull
from devstack.stack import LocalStack
from tests.e2e.conftest import rows
from tests.run_watch import wait_for_run
from tests.unit.test_openlineage import validated

pytestmark = pytest.mark.integration
RUN_DATE = "2031-03-14"  # a date no other test lands, so the landing rows below are this test's own
LANDING = """
CREATE TABLE IF NOT EXISTS landing.customers (customer_id INT64, name STRING, country STRING, load_date DATE);
CREATE TABLE IF NOT EXISTS landing.products (product_id INT64, name STRING, category STRING, unit_price FLOAT64, load_date DATE);
CREATE TABLE IF NOT EXISTS landing.orders (
  order_id INT64, customer_id INT64, product_id INT64, quantity INT64, order_date DATE, load_date DATE
);
DELETE FROM landing.customers WHERE load_date = @d;
DELETE FROM landing.products WHERE load_date = @d;
DELETE FROM landing.orders WHERE load_date = @d;
INSERT INTO landing.customers VALUES (1, 'Aroha', 'NZ', @d), (2, 'Bruno', 'BR', @d), (3, 'Chiara', 'IT', @d);
INSERT INTO landing.products VALUES (10, 'Flat white', 'coffee', 5.5, @d), (11, 'Espresso machine', 'equipment', 420.0, @d);
INSERT INTO landing.orders VALUES
  (200, 1, 10, 2, @d, @d),
  (200, 1, 10, 9, @d, @d),
  (201, 2, 11, 3, @d, @d),
  (202, 3, 10, 1, @d, @d);
"""
EVENT_KEYS = {"schema_version", "type", "run_id", "manifest", "manifest_version", "environment", "status", "counts", "time"}


def run_sql(stack: LocalStack, sql: str, run_date: str = RUN_DATE) -> None:
    config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("d", "DATE", run_date)])
    stack.bigquery_client().query(sql, job_config=config).result()


def baton_cli(stack: LocalStack, *args: str) -> str:
    """Run the operator CLI as an operator would, with the handlers' settings pointed at this stack."""
    from typer.testing import CliRunner

    from baton_cli.app import app

    env = {
        **stack.settings,
        **stack.spanner.env(),
        **stack.pubsub.env(),
        "BATON_BIGQUERY_ENDPOINT": stack.bigquery.endpoint,
        "BATON_MANIFESTS_DIR": str(stack.options.manifests_dir),
        "BATON_LINEAGE_FILE": str(stack.lineage_file),
        "COLUMNS": "250",
    }
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


def operator(stack: LocalStack) -> Orchestrator:
    """What an operator's CLI builds: the handlers' own settings, pointed at the local BigQuery."""
    env = {
        **stack.settings,
        "BATON_BIGQUERY_ENDPOINT": stack.bigquery.endpoint,
        "BATON_MANIFESTS_DIR": str(stack.options.manifests_dir),
    }
    return bootstrap.build(Settings.from_env(env))


def run_events(stack: LocalStack, subscription: str, run_id: str, until: str, timeout_s: float = 30) -> list[dict[str, Any]]:
    """The run's events in publication order, pulled until one of type `until` arrived."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and until not in [e["type"] for e in events]:
        for message in pull(stack.pubsub.host, subscription, timeout=2):
            event = json.loads(message.message.data)
            assert message.message.attributes["type"] == event["type"]
            if message.message.attributes["run_id"] == run_id:
                events.append(event)
    return sorted(events, key=lambda e: dt.datetime.fromisoformat(e["time"]))


def test_a_failed_check_stops_the_run_and_retry_finishes_it_once_the_data_is_fixed(
    local_stack: LocalStack, run_store: SpannerRunStore
) -> None:
    project = local_stack.topology.project
    with admin_clients(local_stack.pubsub.host) as (_, subscriber):
        subscription = ensure_pull_subscription(
            subscriber, project, topic=local_stack.topology.run_events_topic, name=f"e2e-run-events-{os.getpid()}"
        )
    local_stack.create_datasets(["landing", "trusted"])
    run_sql(local_stack, LANDING)  # order 200 arrives twice
    stats = local_stack.bigquery.stats()
    stats.reset()

    run_id = local_stack.start_run("trusted_sales", {"run_date": RUN_DATE})["run_id"]
    run = wait_for_run(run_store, run_id)
    jobs = {job.job_key: job for job in run_store.list_jobs(run_id)}
    assert run.status == RunStatus.FAILED, [(j.job_key, j.status, j.error) for j in jobs.values()]
    orders = jobs["trusted_orders"]
    assert (orders.status, orders.error_reason) == (JobStatus.FAILED, CHECK_FAILED_REASON)
    assert orders.error == "check 'one_row_per_order' failed: 1 offending row(s)"
    assert orders.stats is not None and orders.stats.destination_table == f"{project}.trusted.orders"
    assert jobs["customer_revenue"].status == JobStatus.SKIPPED
    checks = {c.name: c for c in run_store.list_checks(run_id, "trusted_orders")}
    assert {name: (c.status, c.rows) for name, c in checks.items()} == {
        "order_id_present": (CheckStatus.PASSED, 0),
        "one_row_per_order": (CheckStatus.FAILED, 1),
        "positive_quantity": (CheckStatus.PASSED, 0),
        "known_customer": (CheckStatus.PASSED, 0),
        "has_orders": (CheckStatus.PASSED, 0),
    }
    published = [entry for entry in run_store.list_catalog(prefix=f"{project}.trusted.") if entry.run_id == run_id]
    assert published == [], "nothing trusted was published"  # by this run: the session's other runs may publish
    # What the operator sees: the failed job with its failed check, and the skipped downstream.
    status = baton_cli(local_stack, "status", run_id)
    cells = [line.replace("│", " ").split() for line in status.splitlines()]
    lines = {row[0]: " ".join(row) for row in cells if row and row[0] in jobs}
    assert "FAILED" in lines["trusted_orders"] and "one_row_per_order" in status
    assert "SKIPPED" in lines["customer_revenue"]
    # The failed check kept its offending row, read from its own result, and its BigQuery job ID.
    duplicate = checks["one_row_per_order"]
    assert duplicate.sample_rows is not None and [row["order_id"] for row in duplicate.sample_rows] == [200]
    assert all(check.sample_rows is None for name, check in checks.items() if name != "one_row_per_order")
    assert f"BigQuery job {duplicate.bigquery_job_id}" in status and "offending rows" in status
    shown = baton_cli(local_stack, "show", run_id, "trusted_orders")
    assert (
        "snapshot SQL" in shown
        and duplicate.bigquery_job_id in shown
        and bigquery_job_id("dev", run_id, "trusted_orders", 1) in shown
    )
    logged = baton_cli(local_stack, "logs", run_id, "trusted_orders", "--logs-dir", str(local_stack.options.work_dir / "logs"))
    assert "bigquery_job_completed" in logged and "completion applied" in logged and "check=one_row_per_order" in logged

    run_sql(local_stack, "DELETE FROM landing.orders WHERE load_date = @d AND order_id = 200 AND quantity = 9")
    assert run_id in baton_cli(local_stack, "retry", run_id)
    run = wait_for_run(run_store, run_id)
    jobs = {job.job_key: job for job in run_store.list_jobs(run_id)}
    assert run.status == RunStatus.SUCCEEDED, [(j.job_key, j.status, j.error) for j in jobs.values()]
    assert {(key, job.status, job.attempt) for key, job in jobs.items()} == {
        ("trusted_orders", JobStatus.SUCCEEDED, 2),
        ("customer_revenue", JobStatus.SUCCEEDED, 2),
    }
    # Bruno's 3 espresso machines pass the review threshold: a warning, not a failure.
    revenue_checks = {c.name: c for c in run_store.list_checks(run_id, "customer_revenue")}
    assert revenue_checks["no_customer_over_review_threshold"].status == CheckStatus.FAILED
    assert revenue_checks["known_country"].status == CheckStatus.PASSED
    assert {c.attempt for c in revenue_checks.values()} == {2}
    assert rows(local_stack, "SELECT order_id, amount FROM trusted.orders ORDER BY order_id") == [
        {"order_id": 200, "amount": 11.0},
        {"order_id": 201, "amount": 1260.0},
        {"order_id": 202, "amount": 5.5},
    ]

    listed = baton_cli(local_stack, "catalog", "--prefix", f"{project}.trusted.")
    assert f"{project}.trusted.orders" in listed and f"{project}.trusted.customer_revenue" in listed
    catalog = {entry.table_ref: entry for entry in run_store.list_catalog(prefix=f"{project}.trusted.")}
    assert sorted(catalog) == [f"{project}.trusted.customer_revenue", f"{project}.trusted.orders"]
    written = catalog[f"{project}.trusted.orders"]
    assert (written.run_id, written.job_key, written.rows_affected) == (run_id, "trusted_orders", 3)
    assert written.bigquery_job_id == bigquery_job_id("dev", run_id, "trusted_orders", 2)
    assert catalog[f"{project}.trusted.customer_revenue"].rows_affected == 3
    # Checks report through their own events: no handler polled a job. The jobs.get calls are the two failed
    # checks' (the error one and the warning), DONE already, whose offending rows the handler read.
    assert revenue_checks["no_customer_over_review_threshold"].sample_rows is not None
    assert stats.get_calls("baton-handlers") == 2
    assert stats.get_calls_before_done("baton-handlers") == 0

    events = run_events(local_stack, subscription, run_id, until="run.succeeded")
    types = [e["type"] for e in events]
    assert types == ["run.started", "job.failed", "run.failed", "run.retried", "job.warning", "run.succeeded"]
    for event in events:
        assert set(event) >= EVENT_KEYS and event["schema_version"] == 1
        assert (event["run_id"], event["manifest"], event["environment"]) == (run_id, "trusted_sales", "dev")
        assert set(event["counts"]) == {"total", "open", "succeeded", "failed", "skipped", "cancelled"}
    failed, warning, succeeded = events[1], events[4], events[5]
    assert (failed["job"]["key"], failed["job"]["error_reason"]) == ("trusted_orders", CHECK_FAILED_REASON)
    assert [(c["name"], c["severity"], c["rows"]) for c in failed["checks"]] == [("one_row_per_order", "error", 1)]
    assert (warning["job"]["key"], [c["name"] for c in warning["checks"]]) == (
        "customer_revenue",
        ["no_customer_over_review_threshold"],
    )
    assert (succeeded["status"], succeeded["counts"]["succeeded"], succeeded["counts"]["failed"]) == ("SUCCEEDED", 2, 0)

    # Cost: the finishing events carry the run's totals so far; the local BigQuery bills 10 MiB per table read.
    assert 0 < events[2]["cost"]["bytes_billed"] < succeeded["cost"]["bytes_billed"]
    assert succeeded["cost"]["pricing"] == "on-demand" and succeeded["cost"]["amount"] > 0
    assert succeeded["cost"]["bytes_billed"] == run_store.get_run(run_id).usage.bytes_billed  # type: ignore[union-attr]
    assert "trusted_sales" in baton_cli(local_stack, "cost", "--since", "2000-01-01")
    by_job = baton_cli(local_stack, "cost", "--manifest", "trusted_sales", "--since", "2000-01-01")
    assert "trusted_orders" in by_job and "(earlier attempts)" in by_job
    # Catalog and lineage: the table's own size, and what it was made from.
    assert written.table_rows == 3
    assert set(written.upstream_tables) == {f"{project}.landing.orders", f"{project}.landing.products"}
    assert written.table_bytes is not None and written.table_bytes > 0
    revenue = catalog[f"{project}.trusted.customer_revenue"]
    assert f"{project}.trusted.orders" in revenue.upstream_tables
    drawn = baton_cli(local_stack, "lineage", f"{project}.trusted.orders")
    assert f"{project}.landing.orders  (not written by Baton)" in drawn
    assert f"{project}.trusted.customer_revenue  by customer_revenue" in drawn
    # OpenLineage: every attempt BigQuery ran has its START and its COMPLETE, valid by the client's schema model.
    lineage = [json.loads(line) for line in local_stack.lineage_file.read_text().splitlines()]
    ours = [e for e in lineage if e["run"]["facets"]["parent"]["run"]["runId"] == str(uuid.UUID(hex=run_id))]
    for event in ours:
        validated(event)
    seen = {(e["job"]["name"], e["run"]["facets"]["externalQuery"]["externalQueryId"], e["eventType"]) for e in ours}
    attempts = [("trusted_orders", 1), ("trusted_orders", 2), ("customer_revenue", 2)]
    assert seen == {
        (f"trusted_sales.{key}", bigquery_job_id("dev", run_id, key, attempt), kind)
        for key, attempt in attempts
        for kind in ("START", "COMPLETE")
    }


def test_a_lost_check_event_is_healed_from_bigquerys_own_record_of_the_check(
    local_stack: LocalStack, run_store: SpannerRunStore
) -> None:
    run_date = "2031-03-15"
    local_stack.create_datasets(["landing", "trusted"])
    run_sql(local_stack, LANDING.replace("(200, 1, 10, 9, @d, @d),", ""), run_date)  # clean data this time
    lost = ChaosPolicy().drop(lambda entry: (entry_job_id(entry) or "").endswith("-check-has_orders"))
    local_stack.bigquery.bridge.policy = lost
    try:
        run_id = local_stack.start_run("trusted_sales", {"run_date": run_date})["run_id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            checks = {c.name: c.status for c in run_store.list_checks(run_id, "trusted_orders")}
            if list(checks.values()).count(CheckStatus.PASSED) == len(checks) - 1 and lost.rules[0].remaining == 0:
                break
            time.sleep(0.2)
        assert checks["has_orders"] == CheckStatus.PENDING, checks
        assert local_stack.bigquery.bridge.flush()
        job = {j.job_key: j for j in run_store.list_jobs(run_id)}["trusted_orders"]
        assert (job.status, job.pending_checks) == (JobStatus.CHECKING, 1), "without its event, the check never reports"
    finally:
        local_stack.bigquery.bridge.policy = DeliverOnce()

    # The scheduled reconciler, with its first look due at once: it asks BigQuery for the check's row count.
    with local_stack.client_env():
        report = operator(local_stack).reconcile(ReconcilePolicy(lost_after=dt.timedelta(0), stalled_after=dt.timedelta(hours=1)))
    assert report.healed == 1
    run = wait_for_run(run_store, run_id)
    assert run.status == RunStatus.SUCCEEDED
    healed = {c.name: c for c in run_store.list_checks(run_id, "trusted_orders")}["has_orders"]
    assert (healed.status, healed.rows) == (CheckStatus.PASSED, 0)
