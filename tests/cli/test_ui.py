"""`baton ui` through Starlette's test client, over runs in the Spanner emulator."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from baton.domain.naming import check_job_id
from baton.domain.records import CheckCompletion, Completion, JobStats
from baton_cli.report.ui import create_app
from tests.cli.conftest import ENVIRONMENT, Core

pytestmark = pytest.mark.integration
NOW = dt.datetime(2031, 1, 1, tzinfo=dt.UTC)  # after every run the test makes


def failed_run(core: Core) -> str:
    """`checked`: load's check finds 2 offending rows, so load fails and report is skipped."""
    run = core.orchestrator.start("checked", {"run_date": "2026-11-27"})
    load = next(job for job in core.store.list_jobs(run.run_id) if job.job_key == "load")
    assert load.bigquery_job_id is not None
    stats = JobStats(total_bytes_processed=2048)
    core.orchestrator.complete(Completion(run.run_id, "load", 1, load.bigquery_job_id, None, stats))
    check_id = check_job_id(ENVIRONMENT, run.run_id, "load", 1, "id_not_null")
    core.orchestrator.complete(CheckCompletion(run.run_id, "load", 1, "id_not_null", check_id, rows=2))
    return run.run_id


@pytest.fixture
def client(core: Core) -> TestClient:
    app = create_app(lambda: core.store, project="shop-prod", location="EU", clock=lambda: NOW)
    return TestClient(app, raise_server_exceptions=True)


def test_the_runs_list_links_every_run_and_reloads_while_one_is_live(core: Core, client: TestClient) -> None:
    failed = failed_run(core)
    live = core.orchestrator.start("checked", {"run_date": "2026-11-28"}).run_id
    response = client.get("/")
    assert response.status_code == 200
    listed = dict(re.findall(r'data-run="(\w+)" data-status="(\w+)"', response.text))
    assert listed == {failed: "FAILED", live: "RUNNING"}
    assert f'href="/runs/{failed}"' in response.text
    assert 'http-equiv="refresh"' in response.text

    only_failed = client.get("/", params={"status": "failed"})
    assert re.findall(r'data-run="(\w+)"', only_failed.text) == [failed]
    assert 'http-equiv="refresh"' not in only_failed.text
    assert "No runs match" in client.get("/", params={"manifest": "elt_daily"}).text
    assert client.get("/", params={"status": "sleeping"}).status_code == 400


def test_a_run_page_shows_its_jobs_check_and_console_links(core: Core, client: TestClient) -> None:
    run_id = failed_run(core)
    response = client.get(f"/runs/{run_id}")
    assert response.status_code == 200
    page = response.text
    assert re.search(r'id="job-load" data-status="FAILED"', page)
    assert re.search(r'id="job-report" data-status="SKIPPED"', page)
    assert 'data-check="id_not_null" data-status="FAILED"' in page and "2 offending row(s)" in page
    assert f"j=bq%3AEU%3Abaton_{ENVIRONMENT}_{run_id}_load_1&amp;" in page
    assert 'id="timeline"' in page and 'id="dag"' in page
    assert 'href="/"' in page, "a way back to the list"
    assert 'http-equiv="refresh"' not in page, "a finished run does not reload"


def test_a_live_run_page_reloads_itself(core: Core, client: TestClient) -> None:
    run_id = core.orchestrator.start("checked", {"run_date": "2026-11-29"}).run_id
    page = client.get(f"/runs/{run_id}").text
    assert '<meta http-equiv="refresh" content="5">' in page
    assert "still RUNNING" in page


def test_an_unknown_run_is_a_404_page(client: TestClient) -> None:
    response = client.get("/runs/nosuchrun")
    assert response.status_code == 404
    assert "no run &#39;nosuchrun&#39;" in response.text


def test_the_app_is_read_only(core: Core, client: TestClient) -> None:
    run_id = failed_run(core)
    assert client.post(f"/runs/{run_id}").status_code == 405
    assert client.delete("/").status_code == 405


def test_baton_report_writes_the_run_page_as_one_file(core: Core, tmp_path: Path) -> None:
    from tests.cli.conftest import assert_one_line_error, invoke

    run_id = failed_run(core)
    page = tmp_path / "run.html"
    result = invoke("report", run_id, "-o", str(page))
    assert result.exit_code == 0, result.output
    assert f"wrote {page}" in result.output and "FAILED" in result.output
    html = page.read_text()
    assert run_id in html and "id_not_null" in html and "<svg" in html
    assert "http://" not in html.replace("http://www.w3.org", ""), "self-contained: nothing to fetch"
    assert_one_line_error(invoke("report", "0" * 32, "-o", str(tmp_path / "x.html")), f"run '{'0' * 32}' not found")
