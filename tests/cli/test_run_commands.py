"""start, status (and --watch), runs, retry, cancel and catalog over the Spanner emulator; their one-line errors."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from baton.domain.naming import check_job_id
from baton.domain.records import CheckCompletion, Completion, JobError, JobStats, JobStatus, RunStatus
from baton.entrypoints import requests as start_requests
from baton.errors import BatonError
from baton.service.ports import TableSize
from baton_cli import app as cli
from baton_cli import root
from devstack.processes import free_port
from tests.cli.conftest import ENVIRONMENT, Core, assert_one_line_error, invoke
from tests.conftest import REPO

pytestmark = pytest.mark.integration
RUN_DATE = "2026-11-27"


def job_id(run_id: str, key: str, attempt: int = 1) -> str:
    return f"baton_{ENVIRONMENT}_{run_id}_{key}_{attempt}"


def finish(core: Core, run_id: str, key: str, error: JobError | None = None, stats: JobStats | None = None) -> None:
    job = next(j for j in core.store.list_jobs(run_id) if j.job_key == key)
    assert job.bigquery_job_id is not None
    event = Completion(run_id, key, job.attempt, job.bigquery_job_id, error, stats or JobStats())
    core.orchestrator.complete(event)


def dag_depth(core: Core, run_id: str) -> int:
    """Jobs on the longest path of the run's DAG."""
    needs = {job.job_key: job.spec.needs for job in core.store.list_jobs(run_id)}

    def depth(key: str) -> int:
        return 1 + max((depth(upstream) for upstream in needs[key]), default=0)

    return max(depth(key) for key in needs)


def row_of(output: str, key: str) -> str:
    """The table line of one job or run: the line whose first cell it is."""
    lines = [line for line in output.splitlines() if line.split()[:1] == [key]]
    assert len(lines) == 1, (key, output)
    return lines[0]


# --- start -------------------------------------------------------------------------------------------------


def test_start_prints_the_run_id_and_submits_the_roots(core: Core) -> None:
    result = invoke("start", "elt_daily", "--param", f"run_date={RUN_DATE}")
    assert result.exit_code == 0, result.output
    run_id = result.stdout.strip()
    run = core.store.get_run(run_id)
    assert run is not None and run.status == RunStatus.RUNNING
    assert run.params["run_date"].value == RUN_DATE
    assert core.submitter.submitted_keys() == ["land_raw"]
    assert f"baton status {run_id} --watch" in result.stderr
    assert '"severity"' not in result.output  # the core's JSON log lines stay out of the way...
    verbose = invoke("--verbose", "start", "elt_daily", "--param", f"run_date={RUN_DATE}")
    assert len(verbose.stdout.splitlines()) == 1
    assert '"message": "run queued"' in verbose.stderr  # ...unless asked for, on stderr (it waits for the first)
    assert "queued (it starts when the run in progress ends) elt_daily" in verbose.stderr
    assert core.settings_seen[0].environment == ENVIRONMENT


def test_start_types_bool_params_as_the_manifest_declares(core: Core) -> None:
    result = invoke("start", "checked", "-p", f"run_date={RUN_DATE}", "-p", "full_refresh=true")
    assert result.exit_code == 0, result.output
    run = core.store.get_run(result.stdout.strip())
    assert run is not None
    assert run.params["full_refresh"].value is True


def test_start_with_bad_params_writes_nothing(core: Core) -> None:
    result = invoke("start", "elt_daily", "-p", "run_date=yesterday", "-p", "colour=blue")
    line = assert_one_line_error(result, "param 'run_date'", "unknown param 'colour'")
    assert line.count("elt_daily:") == 2
    assert core.store.list_runs() == []


def test_start_a_param_without_a_value_is_a_usage_error(core: Core) -> None:
    result = invoke("start", "elt_daily", "-p", "run_date")
    assert result.exit_code == 2
    assert "is not NAME=VALUE" in result.output and "Traceback" not in result.output


def test_start_an_unknown_manifest_is_one_line(core: Core) -> None:
    assert_one_line_error(invoke("start", "no_such_manifest"), "manifest 'no_such_manifest' not found")


def test_start_an_invalid_manifest_is_one_line_with_every_problem(core: Core, manifests_dir: Path) -> None:
    (manifests_dir / "broken.yaml").write_text(
        "name: broken\njobs:\n  - {key: a, sql: SELECT 1, needs: [nowhere]}\n  - {key: b, sql: ''}\n"
    )
    line = assert_one_line_error(invoke("start", "broken"), "broken.yaml: job 'a': needs unknown job 'nowhere'")
    assert "job 'b': SQL is empty" in line
    assert core.store.list_runs() == []


# --- status ------------------------------------------------------------------------------------------------


def test_status_shows_the_run_header_and_every_job(core: Core) -> None:
    run = core.orchestrator.start("elt_daily", {"run_date": RUN_DATE})
    finish(core, run.run_id, "land_raw")
    finish(core, run.run_id, "hist_orders", JobError("invalidQuery", "Unrecognized name: amount at [3:7]"))
    result = invoke("status", run.run_id)
    assert result.exit_code == 0, result.output
    stored = core.store.get_run(run.run_id)
    assert stored is not None
    out = result.stdout
    assert run.run_id in out and f"elt_daily @ {run.manifest_version}" in out
    assert f"{stored.succeeded_jobs} succeeded · {stored.failed_jobs} failed · {stored.skipped_jobs} skipped" in out
    assert f"run_date={RUN_DATE}" in out
    for job in core.store.list_jobs(run.run_id):
        line = row_of(out, job.job_key)
        assert str(job.status) in line
        assert job.bigquery_job_id is not None
        # BigQuery knows a job ID only once it was submitted; a skipped job never was.
        assert (job.bigquery_job_id in line) == (job.submitted_at is not None), line
    # Errors are long: each goes on a line of its own below the table, whole.
    errors = out.split("\nerrors\n", 1)[1].splitlines()
    assert "hist_orders: invalidQuery: Unrecognized name: amount at [3:7]" in errors
    assert "consume_order_lines: upstream 'hist_orders' failed" in errors
    assert "invalidQuery" not in row_of(out, "hist_orders")
    # Upstreams come first: the root's row is above every other.
    assert out.index("\nland_raw ") < min(out.index(f"\n{key} ") for key in ("hist_orders", "events_daily_summary"))
    assert "checks" not in out  # elt_daily declares none


def test_status_shows_check_results_of_the_current_attempt(core: Core) -> None:
    run = core.orchestrator.start("checked", {"run_date": RUN_DATE})
    finish(core, run.run_id, "load", stats=JobStats(rows_affected=1))
    before = invoke("status", run.run_id).stdout
    assert "CHECKING" in row_of(before, "load") and "id_not_null pending" in row_of(before, "load")
    check_id = check_job_id(ENVIRONMENT, run.run_id, "load", 1, "id_not_null")
    core.orchestrator.complete(CheckCompletion(run.run_id, "load", 1, "id_not_null", check_id, rows=0))
    after = invoke("status", run.run_id).stdout
    assert "SUCCEEDED" in row_of(after, "load") and "id_not_null passed" in row_of(after, "load")
    assert "SUBMITTED" in row_of(after, "report")

    failing = core.orchestrator.start("checked", {"run_date": RUN_DATE})
    finish(core, failing.run_id, "load")
    check_id = check_job_id(ENVIRONMENT, failing.run_id, "load", 1, "id_not_null")
    core.orchestrator.complete(CheckCompletion(failing.run_id, "load", 1, "id_not_null", check_id, rows=3))
    assert "id_not_null FAILED (3 rows)" in row_of(invoke("status", failing.run_id).stdout, "load")


def test_status_of_an_unknown_run_is_one_line(core: Core) -> None:
    assert_one_line_error(invoke("status", "0" * 32), f"run '{'0' * 32}' not found")


def test_watch_redraws_until_the_run_succeeds(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each pause of the watch lets BigQuery "finish" whatever is submitted, until the run is done."""
    run = core.orchestrator.start("elt_daily", {"run_date": RUN_DATE})
    pauses: list[float] = []

    def bigquery_finishes_submitted_jobs(seconds: float) -> None:
        pauses.append(seconds)
        for job in core.store.list_jobs(run.run_id):
            if job.status == JobStatus.SUBMITTED:
                finish(core, run.run_id, job.job_key)

    monkeypatch.setattr(root, "sleep", bigquery_finishes_submitted_jobs)
    result = invoke("status", run.run_id, "--watch", "--interval", "0.5")
    assert result.exit_code == 0, result.output
    assert pauses and set(pauses) == {0.5}
    assert len(pauses) == dag_depth(core, run.run_id)  # one layer of jobs finishes per refresh
    assert "SUCCEEDED" in result.stdout and "9 succeeded" in result.stdout


def test_watch_exits_3_when_the_run_fails(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    run = core.orchestrator.start("checked", {"run_date": RUN_DATE})
    monkeypatch.setattr(root, "sleep", lambda _: finish(core, run.run_id, "load", JobError("accessDenied", "no access")))
    result = invoke("status", run.run_id, "--watch")
    assert result.exit_code == cli.EXIT_RUN_NOT_SUCCEEDED
    assert "FAILED" in row_of(result.stdout, "load") and "SKIPPED" in row_of(result.stdout, "report")


# --- runs, cancel, retry -----------------------------------------------------------------------------------


def test_runs_lists_newest_first_and_filters(core: Core) -> None:
    first = core.orchestrator.start("elt_daily", {"run_date": RUN_DATE})
    second = core.orchestrator.start("checked", {"run_date": RUN_DATE})
    third = core.orchestrator.start("elt_daily", {"run_date": RUN_DATE})
    core.orchestrator.cancel(first.run_id)

    out = invoke("runs").stdout
    positions = [out.index(run.run_id) for run in (third, second, first)]
    assert positions == sorted(positions)
    assert "CANCELLED" in row_of(out, first.run_id) and "RUNNING" in row_of(out, third.run_id)
    assert "0/9" in row_of(out, third.run_id)

    only_checked = invoke("runs", "--manifest", "checked").stdout
    assert second.run_id in only_checked and first.run_id not in only_checked and third.run_id not in only_checked
    cancelled = invoke("runs", "--status", "cancelled").stdout
    assert first.run_id in cancelled and second.run_id not in cancelled
    latest = invoke("runs", "-n", "1").stdout
    assert third.run_id in latest and first.run_id not in latest
    none = invoke("runs", "--manifest", "nothing_here")
    assert none.exit_code == 0 and none.stderr.strip() == "no runs"


def test_runs_with_an_unknown_status_is_a_usage_error(core: Core) -> None:
    result = invoke("runs", "--status", "sleeping")
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_cancel_stops_the_run_and_cancels_what_bigquery_holds(core: Core) -> None:
    run = core.orchestrator.start("elt_daily", {"run_date": RUN_DATE})
    result = invoke("cancel", run.run_id)
    assert result.exit_code == 0, result.output
    stored = core.store.get_run(run.run_id)
    assert stored is not None and stored.status == RunStatus.CANCELLED
    assert f"{stored.cancelled_jobs} open job(s) cancelled" in result.stdout and stored.cancelled_jobs == 9
    assert core.submitter.cancelled == [job_id(run.run_id, "land_raw")]
    again = invoke("cancel", run.run_id)
    assert again.exit_code == 0 and "already ended CANCELLED" in again.stdout
    assert_one_line_error(invoke("cancel", "f" * 32), "not found")


def test_retry_reruns_the_failed_jobs_of_a_failed_run(core: Core) -> None:
    run = core.orchestrator.start("checked", {"run_date": RUN_DATE})
    finish(core, run.run_id, "load", JobError("invalidQuery", "Syntax error"))
    failed = core.store.get_run(run.run_id)
    assert failed is not None and failed.status == RunStatus.FAILED
    result = invoke("retry", run.run_id)
    assert result.exit_code == 0, result.output
    stored = core.store.get_run(run.run_id)
    assert stored is not None and stored.status == RunStatus.RUNNING
    assert f"is RUNNING again: {stored.open_jobs} of 2 jobs to run" in result.stdout
    assert job_id(run.run_id, "load", 2) in core.submitter.job_ids
    assert_one_line_error(invoke("retry", run.run_id), "cannot be retried", "RUNNING")


def test_rerun_from_a_job_reuses_its_upstreams_from_spanner(core: Core) -> None:
    run = core.orchestrator.start("elt_daily", {"run_date": RUN_DATE})
    for key in ("land_raw", "hist_customers", "hist_orders", "hist_products"):
        finish(core, run.run_id, key, JobError("invalidQuery", "bad") if key == "hist_orders" else None)
    failed = core.store.get_run(run.run_id)
    assert failed is not None and failed.status == RunStatus.FAILED

    result = invoke("rerun", run.run_id, "--from", "hist_orders")
    assert result.exit_code == 0, result.output
    new_id = result.stdout.strip()
    assert "since run" in result.stderr and "no job changed" in result.stderr
    jobs = {job.job_key: job for job in core.store.list_jobs(new_id)}
    reused = {key for key, job in jobs.items() if job.reused_from == run.run_id}
    assert reused == {"land_raw", "hist_customers", "hist_products"}
    assert all(jobs[key].status == JobStatus.SUCCEEDED for key in reused)
    assert jobs["hist_orders"].status == JobStatus.SUBMITTED
    assert_one_line_error(invoke("rerun", run.run_id, "--from", "nope"), "job 'nope' is not in manifest 'elt_daily'")


def test_pause_refuses_starts_in_one_line_until_resume(core: Core) -> None:
    result = invoke("pause", "checked", "--reason", "backfill in progress")
    assert result.exit_code == 0, result.output
    assert "checked" in core.store.paused()
    assert_one_line_error(invoke("start", "checked", "-p", f"run_date={RUN_DATE}"), "is paused (backfill in progress)")
    assert invoke("resume", "checked").exit_code == 0
    assert invoke("start", "checked", "-p", f"run_date={RUN_DATE}").exit_code == 0
    assert_one_line_error(invoke("pause", "no_such_manifest"), "manifest 'no_such_manifest' not found")


def test_hold_keeps_released_jobs_back_until_release(core: Core) -> None:
    run = core.orchestrator.start("elt_daily", {"run_date": RUN_DATE})
    result = invoke("hold", run.run_id, "--reason", "warehouse migration")
    assert result.exit_code == 0, result.output
    assert "is held: nothing more is submitted" in result.stdout
    assert "already held (warehouse migration)" in invoke("hold", run.run_id).stdout
    finish(core, run.run_id, "land_raw")  # in flight when held: recorded, and what it releases waits READY
    waiting = [job for job in core.store.list_jobs(run.run_id) if job.status == JobStatus.READY]
    assert len(waiting) == 3 and not any(key.startswith("hist_") for key in core.submitter.submitted_keys())

    shown = invoke("status", run.run_id)
    assert "RUNNING (held)" in shown.stdout and "warehouse migration" in shown.stdout
    document = json.loads(invoke("status", run.run_id, "--json").stdout)
    assert document["run"]["held"]["reason"] == "warehouse migration" and document["run"]["status"] == "RUNNING"
    listed = json.loads(invoke("runs", "--json").stdout)["runs"]
    assert next(item for item in listed if item["run_id"] == run.run_id)["held"] is not None

    released = invoke("release", run.run_id)
    assert released.exit_code == 0, released.output
    assert "goes on: 3 READY job(s) handed to BigQuery" in released.stdout
    assert {job.job_key for job in core.store.list_jobs(run.run_id) if job.status == JobStatus.SUBMITTED} == {
        job.job_key for job in waiting
    }
    assert json.loads(invoke("status", run.run_id, "--json").stdout)["run"]["held"] is None
    assert "is not held; nothing to release" in invoke("release", run.run_id).stdout
    invoke("cancel", run.run_id)
    assert_one_line_error(invoke("hold", run.run_id), "cannot be held", "it is CANCELLED")
    assert_one_line_error(invoke("release", "f" * 32), "not found")


# --- catalog -----------------------------------------------------------------------------------------------


def test_catalog_shows_the_last_write_of_each_table(core: Core) -> None:
    run = core.orchestrator.start("elt_daily", {"run_date": RUN_DATE})
    for key in ("land_raw", "hist_customers", "hist_products", "hist_orders"):
        finish(core, run.run_id, key)
    end = dt.datetime(2026, 11, 27, 6, 20, 5, tzinfo=dt.UTC)
    stats = JobStats(
        rows_affected=4213, total_bytes_processed=999, destination_table="baton-local.consume.order_lines", end_time=end
    )
    # The table's own size after the write (tables.get), not what the query read.
    core.submitter.tables["baton-local.consume.order_lines"] = TableSize(rows=4213, bytes=1_048_576)
    finish(core, run.run_id, "consume_order_lines", stats=stats)
    result = invoke("catalog")
    assert result.exit_code == 0, result.output
    line = row_of(result.stdout, "baton-local.consume.order_lines")
    for expected in (run.run_id, "consume_order_lines", "2026-11-27 06:20:05", "4,213", "1,048,576"):
        assert expected in line
    assert "baton-local.consume.order_lines" in invoke("catalog", "--prefix", "baton-local.consume.").stdout
    elsewhere = invoke("catalog", "--prefix", "baton-local.events.")
    assert elsewhere.exit_code == 0 and "no tables in the catalog under 'baton-local.events.'" in elsewhere.stderr


# --- settings and one-line errors --------------------------------------------------------------------------


def test_a_missing_environment_variable_is_named(manifests_dir: Path) -> None:
    assert_one_line_error(invoke("status", "abc"), "missing environment variable(s): BATON_ENV, BATON_PROJECT")


def test_the_installed_entry_point_fails_in_one_line_without_a_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")} | {"BATON_PROJECT": "p"}
    baton = Path(sys.executable).parent / "baton"
    completed = subprocess.run([str(baton), "runs"], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert completed.returncode == 1
    assert completed.stderr == "error: missing environment variable(s): BATON_ENV\n"
    assert completed.stdout == ""


def test_an_unreachable_spanner_emulator_is_one_line(baton_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    host = f"127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("SPANNER_EMULATOR_HOST", host)
    assert_one_line_error(invoke("runs"), f"the Spanner emulator at {host} (SPANNER_EMULATOR_HOST) is unreachable")
    assert_one_line_error(invoke("cancel", "abc"), "is unreachable")


class _UnreachableStore:
    """What the Spanner client raises once its retries against an unreachable endpoint run out."""

    def get_run(self, run_id: str) -> Any:
        cause = gexc.ServiceUnavailable("failed to connect to all addresses")  # type: ignore[no-untyped-call]
        raise gexc.RetryError("Timeout of 30.0s exceeded", cause)  # type: ignore[no-untyped-call]


def test_spanner_giving_up_is_one_line(baton_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(root, "build_store", lambda settings: _UnreachableStore())
    assert_one_line_error(invoke("status", "abc"), "Google API unreachable", "503 failed to connect to all addresses")


def test_an_unexpected_exception_is_still_one_line(baton_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(settings: Any) -> Any:
        raise KeyError("surprise")

    monkeypatch.setattr(root, "build_store", broken)
    assert_one_line_error(invoke("runs"), "unexpected KeyError", "BATON_DEBUG=1")
    monkeypatch.setenv("BATON_DEBUG", "1")
    assert isinstance(invoke("runs").exception, KeyError)


def test_env_file_supplies_the_settings(core: Core, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BATON_ENV")
    env_file = tmp_path / "baton.env"
    env_file.write_text("# the team's dev settings\nBATON_ENV=fromfile\n\nexport BATON_PROJECT='project-from-file'\n")
    result = invoke("--env-file", str(env_file), "runs")
    assert result.exit_code == 0, result.output
    assert (core.settings_seen[-1].environment, core.settings_seen[-1].project) == ("fromfile", "project-from-file")


def test_a_bad_env_file_is_one_line(core: Core, tmp_path: Path) -> None:
    env_file = tmp_path / "bad.env"
    env_file.write_text("BATON_ENV=dev\nthis is not a setting\n")
    assert_one_line_error(invoke("--env-file", str(env_file), "runs"), f"{env_file}:2: expected NAME=VALUE")
    assert_one_line_error(invoke("--env-file", str(tmp_path / "missing.env"), "runs"), "No such file", "missing.env")


# --- start --url: the deployed function over HTTP ------------------------------------------------------------


class _StartFunction(BaseHTTPRequestHandler):
    """Plays start_manifest: decodes the body exactly as the function does, records what it was sent."""

    received: list[tuple[str, Any]] = []
    answer: tuple[int, dict[str, Any]] | None = None

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        command = start_requests.decode_start(body)
        type(self).received.append((self.headers.get("Authorization", ""), json.loads(body)))
        status, answer = type(self).answer or (
            200,
            {"run_id": "a" * 32, "manifest": command.manifest, "version": "v1", "jobs": 2},
        )
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def start_function(manifests_dir: Path) -> Iterator[str]:
    _StartFunction.received, _StartFunction.answer = [], None
    server = HTTPServer(("127.0.0.1", 0), _StartFunction)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


def test_start_with_url_posts_to_the_function_with_an_identity_token(
    start_function: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(cli.ID_TOKEN_VAR, "token-123")
    result = invoke("start", "checked", "--url", start_function, "-p", f"run_date={RUN_DATE}", "-p", "full_refresh=no")
    assert result.exit_code == 0, result.output
    assert result.stdout == "a" * 32 + "\n"
    assert _StartFunction.received == [
        ("Bearer token-123", {"manifest": "checked", "params": {"run_date": RUN_DATE, "full_refresh": False}})
    ]


def test_start_with_url_reports_the_function_refusal_in_one_line(start_function: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cli.ID_TOKEN_VAR, "token-123")
    _StartFunction.answer = (404, {"error": "ManifestNotFound", "message": "manifest 'gone' not found"})
    assert_one_line_error(
        invoke("start", "gone", "--url", start_function), "start_manifest answered 404: manifest 'gone' not found"
    )


def test_start_with_url_and_no_credentials_is_one_line(start_function: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cli.ID_TOKEN_VAR, raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(REPO / "no-such-key.json"))
    assert_one_line_error(
        invoke("start", "checked", "--url", start_function),
        "no credentials that can mint an identity token",
        f"{cli.ID_TOKEN_VAR}=",
    )
    assert _StartFunction.received == []


def test_start_with_an_unreachable_url_is_one_line(monkeypatch: pytest.MonkeyPatch, manifests_dir: Path) -> None:
    monkeypatch.setenv(cli.ID_TOKEN_VAR, "token-123")
    assert_one_line_error(invoke("start", "checked", "--url", f"http://127.0.0.1:{free_port()}/"), "Connection refused")


def test_describe_error_keeps_baton_errors_as_they_are() -> None:
    assert cli.describe_error(BatonError("run 'x' not found")) == "run 'x' not found"
    not_found = gexc.NotFound("Database not found: projects/p/instances/i/databases/d")  # type: ignore[no-untyped-call]
    assert cli.describe_error(not_found) == ("NotFound: 404 Database not found: projects/p/instances/i/databases/d")


def test_status_renders_a_chain_ten_thousand_jobs_deep() -> None:
    from rich.console import Console

    from baton.domain.records import JobRecord, RunRecord
    from baton.domain.specs import JobSpec
    from baton_cli.render import status_view
    from baton_cli.run_commands import _depths

    keys = [f"j{i:05d}" for i in range(10_000)]
    jobs = [
        JobRecord("r", key, JobStatus.PENDING, 1, 1, JobSpec(key, "SELECT 1", (keys[i - 1],) if i else ()))
        for i, key in enumerate(keys)
    ]
    depth = _depths(list(reversed(jobs)))  # deepest first: the worst order for a recursive walk
    assert depth[keys[0]] == 0 and depth[keys[-1]] == 9_999
    run = RunRecord("r", "m", "v", "dev", {}, RunStatus.RUNNING, 10_000, 10_000, created_at=dt.datetime.now(dt.UTC))
    console = Console(width=200, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(status_view(run, sorted(jobs, key=lambda job: depth[job.job_key]), dt.datetime.now(dt.UTC), {}))
    assert keys[-1] in console.export_text()
