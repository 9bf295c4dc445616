"""`baton backfill`, `baton backfills` and a backfill's id in `status`, `cancel` and `retry`, over the Spanner emulator."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from baton.domain.records import RunStatus
from baton.domain.timing import ReconcilePolicy
from baton.service import backfills
from tests.cli.conftest import Core, assert_one_line_error, invoke


def statuses(core: Core, backfill_id: str) -> list[RunStatus]:
    return [run.status for run in core.store.backfill_runs(backfill_id)]


def start(*extra: str) -> str:
    result = invoke("backfill", "elt_daily", "--from", "2026-11-01", "--to", "2026-11-04", *extra)
    assert result.exit_code == 0, result.output
    backfill_id = result.stdout.strip()
    assert backfill_id.startswith("bf-")
    return backfill_id


def test_backfill_starts_a_run_per_date_and_status_shows_each_date(core: Core) -> None:
    result = invoke("backfill", "elt_daily", "--from", "2026-11-01", "--to", "2026-11-04", "--max-active-runs", "2")
    assert result.exit_code == 0, result.output
    backfill_id = result.stdout.strip()
    assert f"backfill of elt_daily over 4 dates (run_date): 2 running, 2 queued; follow it with: baton status {backfill_id}" in (
        result.stderr
    )
    runs = core.store.backfill_runs(backfill_id)
    assert [run.params["run_date"].value for run in runs] == ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"]
    assert statuses(core, backfill_id) == [RunStatus.RUNNING] * 2 + [RunStatus.QUEUED] * 2
    assert core.submitter.submitted_keys() == ["land_raw", "land_raw"], "only the running dates' roots"

    shown = invoke("status", backfill_id)
    assert shown.exit_code == 0, shown.output
    assert "0/4 succeeded, 0 failed, 2 running, 2 queued" in shown.stdout
    for run in runs:
        (line,) = [line for line in shown.stdout.splitlines() if run.run_id in line]
        assert line.split()[:3] == [run.params["run_date"].value, run.run_id, str(run.status)]

    waiting = invoke("status", runs[2].run_id)  # a QUEUED run's own page: its jobs, none submitted
    assert waiting.exit_code == 0, waiting.output
    assert "QUEUED" in waiting.stdout and "land_raw" in waiting.stdout

    document = json.loads(invoke("status", backfill_id, "--json").stdout)
    assert document["backfill"]["status"] == "RUNNING" and document["backfill"]["max_active_runs"] == 2
    assert [(date["date"], date["status"]) for date in document["dates"]] == [
        ("2026-11-01", "RUNNING"),
        ("2026-11-02", "RUNNING"),
        ("2026-11-03", "QUEUED"),
        ("2026-11-04", "QUEUED"),
    ]
    assert document["dates"][0]["started_at"] is not None and document["dates"][2]["started_at"] is None


def test_backfills_lists_each_backfill_with_its_progress(core: Core) -> None:
    first, second = start(), start("--max-active-runs", "3")
    listed = invoke("backfills")
    assert listed.exit_code == 0, listed.output
    assert [line.split()[0] for line in listed.stdout.splitlines()[1:]] == [second, first], "newest first"
    assert "run_date 2026-11-01..2026-11-04" in listed.stdout
    document = json.loads(invoke("backfills", "--json").stdout)
    progress = {found["backfill_id"]: found["runs"] for found in document["backfills"]}
    assert (progress[first]["RUNNING"], progress[first]["QUEUED"]) == (1, 3)
    assert (progress[second]["RUNNING"], progress[second]["QUEUED"]) == (3, 1), "each backfill has a queue of its own"


def test_cancel_and_retry_act_on_the_whole_backfill(core: Core) -> None:
    backfill_id = start("--max-active-runs", "2")
    cancelled = invoke("cancel", backfill_id)
    assert cancelled.exit_code == 0, cancelled.output
    assert f"backfill {backfill_id} is CANCELLED" in cancelled.stdout
    assert statuses(core, backfill_id) == [RunStatus.CANCELLED] * 4
    retried = invoke("retry", backfill_id)
    assert retried.exit_code == 0, retried.output
    assert f"backfill {backfill_id} is RUNNING again: 0/4 succeeded, 0 failed, 2 running, 2 queued" in retried.stdout
    assert statuses(core, backfill_id) == [RunStatus.RUNNING] * 2 + [RunStatus.QUEUED] * 2


def test_bad_backfills_are_one_line_and_write_nothing(core: Core) -> None:
    assert_one_line_error(
        invoke("backfill", "elt_daily", "--from", "2026-11-05", "--to", "2026-11-01"),
        "elt_daily: backfill: the range ends (2026-11-01) before it begins (2026-11-05)",
    )
    assert_one_line_error(
        invoke("backfill", "elt_daily", "--from", "2026-11-01", "--to", "2026-11-02", "--param", "big_order_threshold"),
        "param 'big_order_threshold' is FLOAT64; a backfill binds a DATE param",
    )
    usage = invoke("backfill", "elt_daily", "--from", "yesterday", "--to", "2026-11-02")
    assert usage.exit_code == 2 and "'yesterday' is not a date YYYY-MM-DD" in usage.output
    assert core.store.list_backfills() == [] and core.store.list_runs() == []
    assert_one_line_error(invoke("status", "bf-0000"), "backfill 'bf-0000' not found")


def test_a_backfill_stopped_while_starting_is_finished_by_the_reconciler(core: Core, monkeypatch: Any) -> None:
    """Ctrl-C during `baton backfill`, after two of four dates: the reconciler writes the other two from the
    backfill's row, on the emulator (the Starting and Params columns, the query that finds the start)."""
    real, calls = backfills._start_date, [0]

    def start_date(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(backfills, "_start_date", start_date)
    interrupted = invoke("backfill", "elt_daily", "--from", "2026-11-01", "--to", "2026-11-04", "--max-active-runs", "3")
    monkeypatch.setattr(backfills, "_start_date", real)
    (listed,) = json.loads(invoke("backfills", "--json").stdout)["backfills"]
    backfill_id = listed["backfill_id"]
    assert interrupted.exit_code == 130
    assert_one_line_error(
        interrupted,
        f"interrupted after 2 of 4 dates of {backfill_id}: the reconciler writes the other 2 once the start is "
        f"15 minutes old (baton status {backfill_id}), or stop it all: baton cancel {backfill_id}",
    )
    assert (listed["status"], listed["starting"], listed["total_runs"], sum(listed["runs"].values())) == ("RUNNING", True, 4, 2)
    assert "(starting: 2 of 4 dates written)" in invoke("status", backfill_id).stdout

    young = core.orchestrator.reconcile(ReconcilePolicy())
    assert young.backfill_runs_written == 0, "a start younger than abandon_creating_after may still be writing"
    report = core.orchestrator.reconcile(ReconcilePolicy(abandon_creating_after=dt.timedelta(0)))
    assert (report.backfill_runs_written, report.errors) == (2, 0)
    document = json.loads(invoke("status", backfill_id, "--json").stdout)
    assert document["backfill"]["starting"] is False
    assert [(date["date"], date["status"]) for date in document["dates"]] == [
        ("2026-11-01", "RUNNING"),
        ("2026-11-02", "RUNNING"),
        ("2026-11-03", "RUNNING"),
        ("2026-11-04", "QUEUED"),
    ]
    again = core.orchestrator.reconcile(ReconcilePolicy(abandon_creating_after=dt.timedelta(0)))
    assert again.backfill_runs_written == 0
