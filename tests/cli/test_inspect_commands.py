"""cost, show, logs and lineage, and the cost in status and runs, over the Spanner emulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from baton.domain.naming import check_job_id
from baton.domain.records import CheckCompletion, Completion, JobError, JobStats
from tests.cli.conftest import Core, invoke

pytestmark = pytest.mark.integration
RUN_DATE = "2026-11-27"
GIB = 2**30


def finish(core: Core, run_id: str, key: str, error: JobError | None = None, stats: JobStats | None = None) -> None:
    job = next(j for j in core.store.list_jobs(run_id) if j.job_key == key)
    assert job.bigquery_job_id is not None
    core.orchestrator.complete(Completion(run_id, key, job.attempt, job.bigquery_job_id, error, stats or JobStats()))


def billed(gib: int, slot_ms: int = 60_000) -> JobStats:
    return JobStats(total_bytes_processed=gib * GIB, total_bytes_billed=gib * GIB, total_slot_ms=slot_ms)


def checked_run(core: Core, *, rows: int = 0) -> str:
    """A run of `checked`: load (1 GiB) and its check (1 GiB), then report (2 GiB) if the check passed."""
    run = core.orchestrator.start("checked", {"run_date": RUN_DATE})
    finish(core, run.run_id, "load", stats=billed(1))
    check_id = check_job_id("test", run.run_id, "load", 1, "id_not_null")
    core.orchestrator.complete(CheckCompletion(run.run_id, "load", 1, "id_not_null", check_id, rows, None, billed(1)))
    if not rows:
        finish(core, run.run_id, "report", stats=billed(2))
    return run.run_id


def test_status_and_runs_price_what_bigquery_billed(core: Core) -> None:
    run_id = checked_run(core)
    status = invoke("status", run_id)
    assert status.exit_code == 0, status.output
    # 4 GiB billed at 6.25 USD per TiB.
    assert "cost      0.02441 USD  (4.0 GiB billed" in status.stdout
    assert "on-demand at 6.25 USD per TiB billed" in status.stdout
    load = next(line for line in status.stdout.splitlines() if line.startswith("load "))
    assert "0.01221 USD" in load, "the job's cost includes its check's"
    runs = invoke("runs", env={"BATON_SLOT_HOUR_PRICE": "0.06"})
    assert runs.exit_code == 0, runs.output
    assert "cost" in runs.stdout.splitlines()[0].split()
    row = next(line for line in runs.stdout.splitlines() if run_id in line)
    assert "0.003 USD" in row, "3 slot-minutes at 0.06 is 0.003 USD per slot-hour"


def test_status_and_runs_json_carry_the_cost_of_the_run_and_of_each_job(core: Core) -> None:
    run_id = checked_run(core)
    document = json.loads(invoke("status", run_id, "--json").stdout)
    assert document["run"]["cost"] == {
        "bytes_processed": 4 * GIB,
        "bytes_billed": 4 * GIB,
        "slot_ms": 180_000,
        "amount": round(4 / 1024 * 6.25, 6),
        "currency": "USD",
        "pricing": "on-demand",
    }
    load = next(job for job in document["jobs"] if job["key"] == "load")
    assert load["cost"]["bytes_billed"] == 2 * GIB, "the job's last attempt and its check"
    assert load["checks"][0]["sample_rows"] is None, "a passing check keeps no rows"
    (run,) = [run for run in json.loads(invoke("runs", "--json").stdout)["runs"] if run["run_id"] == run_id]
    assert run["cost"] == document["run"]["cost"]


def test_cost_sums_by_manifest_and_by_job_since_a_date(core: Core) -> None:
    first, second = checked_run(core), checked_run(core)
    failed = checked_run(core, rows=2)  # report never ran
    by_manifest = invoke("cost", "--since", "2000-01-01")
    assert by_manifest.exit_code == 0, by_manifest.output
    row = next(line for line in by_manifest.stdout.splitlines() if " checked " in line)
    assert " 3 " in row and "10.0 GiB" in row, row
    by_job = invoke("cost", "--manifest", "checked", "--since", "2000-01-01")
    assert by_job.exit_code == 0, by_job.output
    lines = by_job.stdout.splitlines()
    load = next(line for line in lines if " load " in line)
    report = next(line for line in lines if " report " in line)
    assert " 3 " in load and "6.0 GiB" in load, load
    assert " 2 " in report and "4.0 GiB" in report, report
    assert "priced on-demand at 6.25 USD per TiB billed" in by_job.stdout
    future = invoke("cost", "--manifest", "checked", "--since", "2999-01-01")
    assert future.exit_code == 0 and "no runs of checked since 2999-01-01" in future.stderr
    assert {first, second, failed}
    bad = invoke("cost", "--since", "last tuesday")
    assert bad.exit_code == 2 and "not a date" in bad.output


def failing_check_run(core: Core) -> str:
    run = core.orchestrator.start("checked", {"run_date": RUN_DATE})
    finish(core, run.run_id, "load", stats=billed(1))
    check_id = check_job_id("test", run.run_id, "load", 1, "id_not_null")
    core.submitter.results[check_id] = [{"id": None, "name": f"row {n}"} for n in range(12)]
    core.orchestrator.complete(CheckCompletion(run.run_id, "load", 1, "id_not_null", check_id, 12, None, billed(1)))
    return run.run_id


def test_status_shows_a_failed_checks_offending_rows_and_its_job_id(core: Core) -> None:
    run_id = failing_check_run(core)
    result = invoke("status", run_id)
    assert result.exit_code == 0, result.output
    check_id = check_job_id("test", run_id, "load", 1, "id_not_null")
    assert f"load: check 'id_not_null' (attempt 1, error) FAILED: 12 offending row(s) · BigQuery job {check_id}" in result.stdout
    assert "offending rows (the first 10 of 12):" in result.stdout
    assert "row 9" in result.stdout and "row 10" not in result.stdout
    assert "NULL" in result.stdout


def test_show_prints_a_jobs_sql_params_attempts_checks_and_cost(core: Core) -> None:
    run_id = failing_check_run(core)
    core.orchestrator.retry(run_id)
    finish(core, run_id, "load", error=JobError("invalidQuery", "Unrecognized name: idd"), stats=billed(1))
    result = invoke("show", run_id, "load")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "SELECT 1 AS id" in out, "the snapshot SQL"
    assert "@run_date=2026-11-27" in out and "@full_refresh=False" in out
    assert "attempt      2 of at most 3" in out
    for attempt in (1, 2):
        assert f"baton_test_{run_id}_load_{attempt}" in out
    assert "invalidQuery: Unrecognized name: idd" in out
    assert "id_not_null FAILED (12 rows)" in out and "row 0" in out
    assert "0.006104 USD" in out, "the last attempt: 1 GiB billed"
    missing = invoke("show", run_id, "nope")
    assert missing.exit_code == 1 and "has no job 'nope' (its jobs: load, report)" in missing.stderr


def test_logs_reads_the_local_stacks_function_logs(core: Core, tmp_path: Path) -> None:
    run_id, other = "a" * 32, "b" * 32
    logs = tmp_path / "logs"
    logs.mkdir()

    def line(time: str, message: str, run: str, **fields: object) -> str:
        labels = {"run_id": run, **{k: str(v) for k, v in fields.items()}}
        entry = {"severity": "INFO", "message": message, "time": time, "run_id": run, **fields}
        return json.dumps({**entry, "logging.googleapis.com/labels": labels})

    (logs / "fn-start_manifest.log").write_text(
        "Serving Flask app\n" + line("2026-12-03T01:00:00.000Z", "run started", run_id) + "\n"
    )
    (logs / "fn-bigquery_job_completed.log").write_text(
        "\n".join(
            [
                line("2026-12-03T01:00:02.000Z", "completion applied", run_id, job_key="load", attempt=1),
                line("2026-12-03T01:00:01.000Z", "completion applied", other, job_key="load", attempt=1),
                line("2026-12-03T01:00:03.000Z", "completion applied", run_id, job_key="report", attempt=1),
                "not json {",
            ]
        )
    )
    result = invoke("logs", run_id, "--logs-dir", str(logs))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [text.split()[2] for text in lines] == ["start_manifest", "bigquery_job_completed", "bigquery_job_completed"]
    assert "job_key=load" in lines[1] and "job_key=report" in lines[2] and other not in result.stdout
    one_job = invoke("logs", run_id, "report", "--logs-dir", str(logs)).stdout.splitlines()
    assert len(one_job) == 1 and "job_key=report" in one_job[0]


def test_logs_in_the_cloud_names_the_query_when_cloud_logging_is_not_installed(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPANNER_EMULATOR_HOST")  # not the local stack: Cloud Logging
    run_id = "c" * 32
    result = invoke("logs", run_id, "load")
    assert result.exit_code == 0, result.output
    expected = f'labels.run_id="{run_id}" AND resource.labels.service_name=~"^baton-test-" AND labels.job_key="load"'
    assert result.stdout.startswith("gcloud logging read ") and expected in result.stdout
    assert "google-cloud-logging is not installed" in result.stderr


def test_lineage_shows_upstream_and_downstream_tables_and_the_jobs_between(core: Core) -> None:
    run = core.orchestrator.start("elt_daily", {"run_date": RUN_DATE})
    project = "baton-local"

    def write(key: str, table: str, *read: str) -> None:
        stats = JobStats(destination_table=f"{project}.{table}", referenced_tables=tuple(f"{project}.{r}" for r in read))
        finish(core, run.run_id, key, stats=stats)

    write("land_raw", "landing.raw", "sources.orders_feed")
    for key in ("hist_customers", "hist_products"):
        finish(core, run.run_id, key)
    write("hist_orders", "history.orders", "landing.raw")
    write("consume_order_lines", "consume.order_lines", "history.orders", "history.customers")
    result = invoke("lineage", "history.orders", env={"BATON_PROJECT": project})
    assert result.exit_code == 0, result.output
    out = result.stdout
    upstream, downstream = out.split("downstream")
    assert f"{project}.history.orders  written by hist_orders (run {run.run_id}" in upstream
    assert f"{project}.landing.raw  written by land_raw" in upstream
    assert f"{project}.sources.orders_feed  (not written by Baton)" in upstream
    assert f"{project}.consume.order_lines  by consume_order_lines" in downstream
    shallow = invoke("lineage", f"{project}.history.orders", "--depth", "1", env={"BATON_PROJECT": project}).stdout
    assert "landing.raw" in shallow and "orders_feed" not in shallow
    unknown = invoke("lineage", "nowhere.table", env={"BATON_PROJECT": project})
    assert unknown.exit_code == 1 and "neither in the catalog nor read by a job in it" in unknown.stderr
