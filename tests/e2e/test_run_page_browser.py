"""A real run's page, loaded in headless Chromium: a run on the local stack whose check failed, then retried.

What Chromium built from the file is read back (its DOM) and asked what it shows; a
screenshot proves the page paints.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from baton.adapters.spanner_store import SpannerRunStore
from baton.domain.naming import bigquery_job_id
from baton.domain.records import CheckStatus, JobStatus, RunStatus
from baton_cli.report import console_url, render_run_page
from devstack.stack import LocalStack
from tests.browser import DomIndex, dump_dom, needs_chromium, screenshot
from tests.e2e.test_checks_e2e import LANDING, operator, run_sql
from tests.run_watch import wait_for_run

pytestmark = [pytest.mark.integration, pytest.mark.browser, needs_chromium]
RUN_DATE = "2031-06-01"  # a date no other test lands


def failed_then_retried_run(stack: LocalStack, store: SpannerRunStore) -> str:
    """trusted_sales: order 200 lands twice, `one_row_per_order` fails; the duplicate is removed and the run retried."""
    stack.create_datasets(["landing", "trusted"])
    run_sql(stack, LANDING, RUN_DATE)
    run_id: str = stack.start_run("trusted_sales", {"run_date": RUN_DATE})["run_id"]
    assert wait_for_run(store, run_id).status == RunStatus.FAILED
    run_sql(stack, "DELETE FROM landing.orders WHERE load_date = @d AND order_id = 200 AND quantity = 9", RUN_DATE)
    with stack.client_env():
        operator(stack).retry(run_id)
    assert wait_for_run(store, run_id).status == RunStatus.SUCCEEDED
    return run_id


def test_a_real_runs_page_shows_its_timeline_dag_jobs_and_failed_check_in_chromium(
    local_stack: LocalStack, run_store: SpannerRunStore, tmp_path: Path
) -> None:
    run_id = failed_then_retried_run(local_stack, run_store)
    run = run_store.get_run(run_id)
    assert run is not None
    jobs = run_store.list_jobs(run_id)
    checks = run_store.list_checks(run_id)
    project = local_stack.topology.project
    page = tmp_path / "run.html"
    page.write_text(render_run_page(run, jobs, checks, dt.datetime.now(dt.UTC), project=project, location="US"))

    dom = DomIndex(dump_dom(page, tmp_path / "profile"))

    assert [e.attrs["data-label"] for e in dom.find("g", inside="timeline", class_="row job-row")] == [
        "trusted_orders",
        "customer_revenue",
    ]
    bars = [e for e in dom.find("rect", inside="timeline") if e.attrs.get("width")]
    assert len(bars) >= 2 + len(checks), "a bar for each job and each check"
    check_rows = [e.attrs["data-label"] for e in dom.find("g", inside="timeline", class_="row check-row")]
    assert len(check_rows) == len(checks) == 5 + 5 + 2, "both attempts of trusted_orders' checks, and customer_revenue's"
    assert "✓ one_row_per_order (attempt 1)" in check_rows
    # Both jobs ran twice (customer_revenue was skipped the first time): the retry chain is the critical path.
    assert len(dom.find("rect", inside="timeline", class_="critical")) == 2
    assert {(e.attrs["data-job"], e.attrs["data-status"]) for e in dom.find("g", inside="dag", class_="node")} == {
        ("trusted_orders", JobStatus.SUCCEEDED),
        ("customer_revenue", JobStatus.SUCCEEDED),
    }
    assert len(dom.find("path", inside="dag")) >= 1 + 2, "the edge, and the arrowheads"

    assert [e.attrs["data-status"] for e in dom.find("section", id="job-trusted_orders")] == [JobStatus.SUCCEEDED]
    failed = dom.find("tr", inside="job-trusted_orders", data_check="one_row_per_order", data_status=CheckStatus.FAILED)
    assert len(failed) == 1, "the first attempt's failed check is kept on the page"
    warned = dom.find("tr", inside="job-customer_revenue", data_check="no_customer_over_review_threshold")
    assert [e.attrs["data-status"] for e in warned] == [CheckStatus.FAILED], "a warning"
    links = {
        e.attrs["href"] for e in dom.find("a", inside="job-trusted_orders") if e.attrs.get("href", "").startswith("https://")
    }
    for attempt in (1, 2):
        assert console_url(project, "US", bigquery_job_id("dev", run_id, "trusted_orders", attempt)) in links
    texts = " ".join(" ".join(e.text) for e in dom.elements)
    assert "attempt 2 of" in texts and "trusted_orders → customer_revenue" in texts

    image = screenshot(page, tmp_path / "run.png", tmp_path / "profile")
    from PIL import Image

    with Image.open(image) as shot:
        assert shot.size == (1400, 1000)
        colours = shot.convert("RGB").getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 200, "the page painted text, bars and boxes, not a blank window"
