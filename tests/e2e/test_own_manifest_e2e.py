"""A data engineer's own manifest, written from scratch, on the whole local stack.

A CSV is seeded into the local bucket with `baton upload`, a load job lands it, two query jobs
and their checks build on it, a copy keeps a snapshot and an extract writes a file back to
Cloud Storage. Every job completes by its own audit entry through the stack's real sink filter,
as queries do. A manifest that writes a dataset the environment does not declare is refused by
name, before anything runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from baton.adapters.spanner_store import SpannerRunStore
from baton.domain.records import CheckStatus, JobStatus, RunStatus
from baton_cli.app import app
from devstack.stack import LocalStack, LocalStackOptions
from tests.e2e.conftest import rows
from tests.run_watch import wait_for_run

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]

ORDERS = """order_id,customer_id,amount,ordered_on
1,10,12.50,2031-06-01
2,10,7.50,2031-06-01
3,11,4.00,2031-06-01
4,12,30.00,2031-06-01
"""

SHOP = """
name: shop_daily
description: Orders landed from Cloud Storage, revenue per customer, a snapshot and an export.
params:
  run_date: {type: DATE}
jobs:
  - key: land_orders
    load:
      source_uris: ["gs://shop-landing/orders/*.csv"]
      format: CSV
      skip_leading_rows: 1
      schema: {order_id: INT64, customer_id: INT64, amount: FLOAT64, ordered_on: DATE}
    destination: landing.shop_orders
    checks:
      - name: order_id_present
        not_null: order_id
  - key: customer_revenue
    needs: [land_orders]
    sql: |
      SELECT customer_id, COUNT(*) AS orders, SUM(amount) AS revenue
      FROM landing.shop_orders
      WHERE ordered_on = @run_date
      GROUP BY customer_id
    destination: consume.shop_customer_revenue
    checks:
      - name: one_row_per_customer
        unique: customer_id
  - key: top_customers
    needs: [customer_revenue]
    sql: SELECT customer_id, revenue FROM consume.shop_customer_revenue WHERE revenue >= 10
    destination: consume.shop_top_customers
  - key: keep_snapshot
    needs: [top_customers]
    copy: {source: consume.shop_top_customers}
    destination: history.shop_top_customers
  - key: export_top
    needs: [top_customers]
    extract:
      source: consume.shop_top_customers
      destination_uris: ["gs://shop-exports/top_customers/part-*.csv"]
"""

UNDECLARED = """
name: shop_scratch
jobs:
  - key: scratch
    sql: SELECT 1 AS x
    destination: scratch.one_row
"""


@pytest.fixture(scope="module")
def stack(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    manifests = tmp_path_factory.mktemp("own-manifests")
    (manifests / "shop_daily.yaml").write_text(SHOP)
    (manifests / "shop_scratch.yaml").write_text(UNDECLARED)
    options = LocalStackOptions(
        work_dir=REPO / ".devstack" / f"own-{os.getpid()}", job_duration_s=0.1, synth_dir=synth_dir, manifests_dir=manifests
    )
    with LocalStack.start(options) as started:
        yield started


def baton(stack: LocalStack, *args: str) -> Any:
    """The operator CLI with what `baton dev` hands every command in the checkout."""
    return CliRunner().invoke(app, list(args), env={**stack.client_environment(), "COLUMNS": "200"})


def test_the_stack_creates_the_declared_datasets(stack: LocalStack) -> None:
    declared = stack.declared_datasets()
    assert {"landing", "history", "consume", "events", "trusted"} <= set(declared)
    created = {dataset.dataset_id for dataset in stack.bigquery_client().list_datasets()}
    assert set(declared) <= created


def test_a_manifest_from_scratch_loads_a_seeded_csv_and_runs_to_succeeded(stack: LocalStack, tmp_path: Path) -> None:
    (tmp_path / "orders").mkdir()
    (tmp_path / "orders" / "2031-06-01.csv").write_text(ORDERS)
    uploaded = baton(stack, "upload", str(tmp_path), "gs://shop-landing")
    assert uploaded.exit_code == 0, uploaded.output
    assert "gs://shop-landing/orders/2031-06-01.csv" in uploaded.output

    validated = baton(stack, "manifest", "validate", "shop_daily")
    assert validated.exit_code == 0, validated.output
    assert "OK" in validated.output and "5 jobs" in validated.output

    store = SpannerRunStore(stack.database())
    run_id = stack.start_run("shop_daily", {"run_date": "2031-06-01"})["run_id"]
    run = wait_for_run(store, run_id)
    jobs = {job.job_key: job for job in store.list_jobs(run_id)}
    assert run.status == RunStatus.SUCCEEDED, [(j.job_key, j.status, j.error) for j in jobs.values()]
    assert all(job.status == JobStatus.SUCCEEDED and job.attempt == 1 for job in jobs.values())

    # Each kind ran as its own BigQuery job, under Baton's deterministic ID, and was driven by its audit entry.
    client = stack.bigquery_client()
    kinds = {key: type(client.get_job(job.bigquery_job_id, location="US")).__name__ for key, job in jobs.items()}
    assert kinds == {
        "land_orders": "LoadJob",
        "customer_revenue": "QueryJob",
        "top_customers": "QueryJob",
        "keep_snapshot": "CopyJob",
        "export_top": "ExtractJob",
    }
    assert jobs["land_orders"].bigquery_job_id == f"baton_dev_{run_id}_land_orders_1"

    # Checks read the load's destination like a query's.
    checks = {c.name: (c.status, c.rows) for c in store.list_checks(run_id, "land_orders")}
    assert checks == {"order_id_present": (CheckStatus.PASSED, 0)}

    revenue = rows(stack, "SELECT customer_id, orders, revenue FROM consume.shop_customer_revenue ORDER BY customer_id")
    assert revenue == [
        {"customer_id": 10, "orders": 2, "revenue": 20.0},
        {"customer_id": 11, "orders": 1, "revenue": 4.0},
        {"customer_id": 12, "orders": 1, "revenue": 30.0},
    ]
    snapshot = rows(stack, "SELECT customer_id FROM history.shop_top_customers ORDER BY customer_id")
    assert [row["customer_id"] for row in snapshot] == [10, 12]
    exported = stack.storage.client().download("shop-exports", "top_customers/part-000000000000.csv").decode()
    assert sorted(exported.splitlines()) == sorted(["customer_id,revenue", "10,20.0", "12,30.0"])

    # The catalog records the tables the load and the copy wrote, as for queries.
    project = stack.topology.project
    tables = {entry.table_ref for entry in store.list_catalog(prefix=f"{project}.")}
    assert {f"{project}.landing.shop_orders", f"{project}.history.shop_top_customers"} <= tables


def test_a_manifest_writing_an_undeclared_dataset_is_refused_by_name(stack: LocalStack) -> None:
    with pytest.raises(
        RuntimeError, match=r"start_manifest answered 400: .*dataset 'scratch' \(in scratch.one_row\) is not declared"
    ):
        stack.start_run("shop_scratch", {})
    validated = baton(stack, "manifest", "validate", "shop_scratch")
    assert validated.exit_code == 1
    assert "job 'scratch': dataset 'scratch' (in scratch.one_row) is not declared for this environment" in validated.output
