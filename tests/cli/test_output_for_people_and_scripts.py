"""What the read commands print: JSON documents for scripts, and tables that keep IDs whole at 80 and 100 columns.

The tables are rendered by the installed `baton` script in a real pseudo-terminal (COLUMNS set,
the terminal's size set to match), against the Spanner emulator the `core` fixture writes to.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import pytest

from baton.domain.records import JobError, JobStats, RunStatus
from baton_cli import root
from tests.cli.conftest import ENVIRONMENT, Core, invoke
from tests.cli.test_run_commands import RUN_DATE, finish
from tests.conftest import INSTANCE, PROJECT

pytestmark = pytest.mark.integration

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
LONG_TABLE = "baton-local.consume.order_lines_by_country_and_day"


def as_json(*args: str) -> Any:
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)  # the whole of stdout is one document
    assert document["schema_version"] == 1
    return document


def failed_run(core: Core) -> str:
    """An elt_daily run with a root that succeeded, a job that failed and a write in the catalog."""
    run = core.orchestrator.start("elt_daily", {"run_date": RUN_DATE})
    end = dt.datetime(2026, 11, 27, 6, 20, 5, tzinfo=dt.UTC)
    finish(core, run.run_id, "land_raw", stats=JobStats(rows_affected=12, destination_table=LONG_TABLE, end_time=end))
    finish(core, run.run_id, "hist_orders", JobError("invalidQuery", "Unrecognized name: amount at [3:7] " + "x" * 150))
    return run.run_id


# --- --json -------------------------------------------------------------------------------------------------


def test_runs_json_lists_each_run_with_its_params_and_counts(core: Core) -> None:
    failed = failed_run(core)
    checked = core.orchestrator.start("checked", {"run_date": RUN_DATE, "full_refresh": True}).run_id
    document = as_json("runs")
    assert [run["run_id"] for run in document["runs"]] == [checked, failed]
    newest, older = document["runs"]
    assert newest["params"] == {"run_date": RUN_DATE, "full_refresh": True}
    assert newest["status"] == "RUNNING" and newest["finished_at"] is None
    assert older["manifest"] == "elt_daily" and older["environment"] == ENVIRONMENT
    stored = core.store.get_run(failed)
    assert stored is not None
    assert older["manifest_version"] == stored.manifest_version
    assert older["jobs"] == {
        "total": 9,
        "succeeded": stored.succeeded_jobs,
        "failed": 1,
        "skipped": stored.skipped_jobs,
        "cancelled": 0,
        "open": stored.open_jobs,
    }
    assert ISO_UTC.match(older["created_at"]) and isinstance(older["duration_seconds"], float)
    assert as_json("runs", "--manifest", "nothing_here") == {"schema_version": 1, "runs": []}


def test_status_json_describes_the_run_and_every_job(core: Core) -> None:
    run_id = failed_run(core)
    document = as_json("status", run_id)
    assert document["run"]["run_id"] == run_id and document["run"]["status"] == "RUNNING"
    jobs = {job["key"]: job for job in document["jobs"]}
    assert set(jobs) == {job.job_key for job in core.store.list_jobs(run_id)}
    assert next(iter(jobs)) == "land_raw"  # upstreams first, as in the table
    land = jobs["land_raw"]
    assert land["status"] == "SUCCEEDED" and land["attempt"] == 1 and land["needs"] == []
    assert land["bigquery_job_id"] == f"baton_{ENVIRONMENT}_{run_id}_land_raw_1"
    assert ISO_UTC.match(land["submitted_at"]) and ISO_UTC.match(land["finished_at"])
    failed = jobs["hist_orders"]
    assert failed["status"] == "FAILED" and failed["error_reason"] == "invalidQuery" and failed["reused_from"] is None
    assert failed["error"].startswith("invalidQuery: Unrecognized name: amount at [3:7] xxx")  # whole, never cut
    assert jobs["consume_order_lines"]["status"] == "SKIPPED"
    assert jobs["consume_order_lines"]["bigquery_job_id"] is None  # never submitted
    assert sorted(jobs["consume_order_lines"]["needs"]) == ["hist_customers", "hist_orders", "hist_products"]


def test_status_json_carries_check_outcomes(core: Core) -> None:
    run = core.orchestrator.start("checked", {"run_date": RUN_DATE})
    finish(core, run.run_id, "load")
    (load,) = [job for job in as_json("status", run.run_id)["jobs"] if job["key"] == "load"]
    (check,) = load["checks"]
    assert check["name"] == "id_not_null" and check["status"] == "PENDING" and check["severity"] == "error"
    assert check["bigquery_job_id"].startswith(f"baton_{ENVIRONMENT}_{run.run_id}_load_1")


def test_status_json_with_watch_prints_once_when_the_run_ends(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    run = core.orchestrator.start("checked", {"run_date": RUN_DATE})
    monkeypatch.setattr(root, "sleep", lambda seconds: core.orchestrator.cancel(run.run_id))
    result = invoke("status", run.run_id, "--watch", "--json")
    assert result.exit_code == root.EXIT_RUN_NOT_SUCCEEDED
    assert json.loads(result.stdout)["run"]["status"] == "CANCELLED"


def test_catalog_json_lists_each_table(core: Core) -> None:
    run_id = failed_run(core)
    (table,) = as_json("catalog")["tables"]
    assert table == {
        "table": LONG_TABLE,
        "run_id": run_id,
        "job_key": "land_raw",
        "bigquery_job_id": f"baton_{ENVIRONMENT}_{run_id}_land_raw_1",
        "written_at": "2026-11-27T06:20:05Z",
        "rows_affected": 12,
        "bytes_processed": None,
        "table_rows": None,
        "table_bytes": None,
        "upstream_tables": [],
    }
    assert as_json("catalog", "--prefix", "elsewhere.")["tables"] == []


def test_validate_json_has_every_manifest_problems_and_next_starts(
    manifests_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(root, "now", lambda: dt.datetime(2026, 3, 27, 12, 0, tzinfo=dt.UTC))
    (manifests_dir / "berlin.yaml").write_text(
        "name: berlin\nschedule: '0 7 * * 1-5'\ntime_zone: Europe/Berlin\njobs: [{key: a, sql: SELECT 1}]\n"
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: broken\nschedule: 61 25 * * *\njobs:\n  - {key: a, sql: SELECT 1, needs: [b], colour: blue}\n")
    result = invoke("manifest", "validate", "berlin", "checked", str(broken), "no_such", "--json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["schema_version"] == 1 and document["valid"] is False
    berlin, checked, bad, missing = document["manifests"]
    assert berlin["valid"] and berlin["name"] == "berlin" and berlin["jobs"] == 1 and berlin["problems"] == []
    assert berlin["warnings"] == []
    assert berlin["schedule"]["cron"] == "0 7 * * 1-5" and berlin["schedule"]["time_zone"] == "Europe/Berlin"
    # Friday noon UTC: today's start is past, the weekend has none, and Berlin is on summer time from Sunday.
    assert berlin["schedule"]["next_starts"] == [
        {"local": "2026-03-30T07:00:00+02:00", "utc": "2026-03-30T05:00:00Z"},
        {"local": "2026-03-31T07:00:00+02:00", "utc": "2026-03-31T05:00:00Z"},
        {"local": "2026-04-01T07:00:00+02:00", "utc": "2026-04-01T05:00:00Z"},
    ]
    assert checked["valid"] and checked["schedule"] is None and len(checked["version"]) == 16
    assert bad["valid"] is False and bad["file"] == str(broken)
    assert {(p["job"], p["check"]) for p in bad["problems"]} == {("a", None), (None, None)}
    assert [p["line"].split(" (")[0] for p in bad["problems"]] == [
        "job 'a': colour: unknown field",
        "schedule '61 25 * * *' is not a valid cron expression",
        "job 'a': needs unknown job 'b'",
    ]
    assert missing["valid"] is False and missing["file"] is None and missing["problems"][0]["message"].startswith("not found")


def test_validate_shows_the_next_three_starts_in_the_time_zone_and_utc(
    manifests_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(root, "now", lambda: dt.datetime(2026, 10, 24, 12, 0, tzinfo=dt.UTC))
    (manifests_dir / "ny.yaml").write_text(
        "name: ny\nschedule: '30 6 * * *'\ntime_zone: America/New_York\njobs: [{key: a, sql: SELECT 1}]\n"
    )
    result = invoke("manifest", "validate", "ny")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == [
        "    schedule '30 6 * * *' in America/New_York; next starts:",
        "      Sun 2026-10-25 06:30 EDT  (10:30 UTC)",
        "      Mon 2026-10-26 06:30 EDT  (10:30 UTC)",
        "      Tue 2026-10-27 06:30 EDT  (10:30 UTC)",
    ]


# --- retry names what it runs --------------------------------------------------------------------------------


def test_retry_of_a_run_whose_manifest_changed_says_so_and_names_the_start_command(core: Core, manifests_dir: Path) -> None:
    run = core.orchestrator.start("checked", {"run_date": RUN_DATE, "full_refresh": True})
    finish(core, run.run_id, "load", JobError("invalidQuery", "Syntax error"))
    path = manifests_dir / "checked.yaml"
    path.write_text(path.read_text().replace("SELECT 2", "SELECT 3"))  # the fix, after the run started
    result = invoke("retry", run.run_id)
    assert result.exit_code == 0, result.output
    current = core.orchestrator.manifests.load("checked").version
    assert result.stderr.splitlines() == [
        f"note: manifest 'checked' changed since this run started ({run.manifest_version} -> {current}); "
        f"retry re-runs the run's own snapshot; to run the current manifest: "
        f"baton start checked -p full_refresh=true -p run_date={RUN_DATE}"
    ]
    # It still retried the snapshot: the run keeps its version and the old SQL.
    stored = core.store.get_run(run.run_id)
    assert stored is not None and stored.status == RunStatus.RUNNING and stored.manifest_version == run.manifest_version
    assert next(job for job in core.store.list_jobs(run.run_id) if job.job_key == "report").spec.sql == "SELECT 2"


def test_retry_of_an_unchanged_manifest_says_nothing_more(core: Core) -> None:
    run = core.orchestrator.start("checked", {"run_date": RUN_DATE})
    finish(core, run.run_id, "load", JobError("invalidQuery", "Syntax error"))
    result = invoke("retry", run.run_id)
    assert result.exit_code == 0 and result.stderr == ""


def test_retry_when_the_manifest_became_invalid_says_so(core: Core, manifests_dir: Path) -> None:
    run = core.orchestrator.start("checked", {"run_date": RUN_DATE})
    finish(core, run.run_id, "load", JobError("invalidQuery", "Syntax error"))
    (manifests_dir / "checked.yaml").write_text("name: checked\njobs: [{key: a}]\n")
    result = invoke("retry", run.run_id)
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == (
        "note: manifest 'checked' is now invalid (1 problem(s): baton manifest validate checked); "
        "retry re-runs the run's own snapshot"
    )


# --- tables in a real terminal -------------------------------------------------------------------------------


def run_in_terminal(args: list[str], columns: int, env: dict[str, str], timeout_s: float = 60.0) -> str:
    """The installed `baton` with a pseudo-terminal as stdin, stdout and stderr; its output without colours."""
    baton = Path(sys.executable).parent / "baton"
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = subprocess.Popen(
        [str(baton), *args],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env={**env, "COLUMNS": str(columns), "TERM": "xterm-256color"},
        close_fds=True,
    )
    os.close(terminal)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 1.0)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                data = os.read(controller, 65536)
            except OSError as exc:  # EIO: the terminal's last writer closed it
                if exc.errno != errno.EIO:
                    raise
                break
            if not data:
                break
            chunks.append(data)
        assert process.wait(timeout=10) == 0, b"".join(chunks).decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
        os.close(controller)
    return ANSI.sub("", b"".join(chunks).decode()).replace("\r\n", "\n")


@pytest.fixture
def terminal_env(core: Core, spanner_database: Any, manifests_dir: Path) -> dict[str, str]:
    """What a shell would export to reach the emulator database the `core` fixture writes to."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("BATON_")},
        "BATON_ENV": ENVIRONMENT,
        "BATON_PROJECT": PROJECT,
        "BATON_SPANNER_INSTANCE": INSTANCE,
        "BATON_SPANNER_DATABASE": spanner_database.database_id,
        "BATON_MANIFESTS_DIR": str(manifests_dir),
        "GOOGLE_CLOUD_SPANNER_MULTIPLEXED_SESSIONS_FOR_RW": "false",
    }


def assert_fits(output: str, columns: int) -> list[str]:
    lines = output.splitlines()
    too_wide = [line for line in lines if len(line) > columns]
    assert not too_wide, output
    return lines


def whole_on_a_line(lines: list[str], *words: str) -> None:
    """Each word appears uncut on some line (cut or folded, it would be split across lines or end in '…')."""
    for word in words:
        assert any(re.search(rf"(?<![\w.-]){re.escape(word)}(?![\w-])", line) for line in lines), (word, "\n".join(lines))


@pytest.mark.parametrize("columns", [80, 100])
def test_runs_status_and_catalog_keep_ids_statuses_and_tables_whole(
    core: Core, terminal_env: dict[str, str], columns: int
) -> None:
    failed = failed_run(core)
    cancelled = core.orchestrator.start("checked", {"run_date": RUN_DATE, "full_refresh": True}).run_id
    core.orchestrator.cancel(cancelled)
    queued = core.orchestrator.start("elt_daily", {"run_date": RUN_DATE}).run_id  # behind `failed`, still RUNNING

    runs = assert_fits(run_in_terminal(["runs"], columns, terminal_env), columns)
    whole_on_a_line(runs, failed, cancelled, queued, "CANCELLED", "RUNNING", "QUEUED")
    for run_id, status in ((failed, "RUNNING"), (cancelled, "CANCELLED"), (queued, "QUEUED")):
        (row,) = [line for line in runs if line.startswith(run_id)]
        assert f" {status} " in f"{row} "
    whole_on_a_line(runs, f"run_date={RUN_DATE}")  # params, as typed after -p

    status = assert_fits(run_in_terminal(["status", failed], columns, terminal_env), columns)
    whole_on_a_line(status, failed)
    for job in core.store.list_jobs(failed):
        (row,) = [line for line in status if line.split()[:1] == [job.job_key]]
        assert row.split()[1] == str(job.status), row
    # The long error is whole below the table, not squeezed into a column.
    below = "".join("".join(line.split()) for line in status[status.index("errors") + 1 :])
    assert "hist_orders:invalidQuery:Unrecognizedname:amountat[3:7]" + "x" * 150 in below

    catalog = assert_fits(run_in_terminal(["catalog"], columns, terminal_env), columns)
    whole_on_a_line(catalog, LONG_TABLE)
    if columns >= 100:  # at 80, a 50-character table name leaves no room for the run beside it
        whole_on_a_line(catalog, failed)
    else:
        (note,) = [line.strip() for line in catalog if "left out at this width" in line]
        assert note.startswith("(run, ") and note.endswith(": left out at this width; --json has every field)")
    print("\n".join(runs + status + catalog))  # shown with -s: what an operator sees at this width


def test_a_wide_terminal_shows_every_column(core: Core, terminal_env: dict[str, str]) -> None:
    run_id = failed_run(core)
    runs = run_in_terminal(["runs"], 200, terminal_env).splitlines()
    assert runs[0].split() == [
        "run",
        "status",
        "manifest",
        "params",
        "done",
        "created",
        "took",
        "failed",
        "skipped",
        "cost",
        "version",
    ]
    status = run_in_terminal(["status", run_id], 200, terminal_env)
    assert f"baton_{ENVIRONMENT}_{run_id}_land_raw_1" in status and "left out at this width" not in status
    narrow = run_in_terminal(["status", run_id], 80, terminal_env)
    assert "(BigQuery job id: left out at this width; --json has every field)" in narrow
