"""Run queues on the whole local stack: one run per manifest, pause with `when_paused: queue`, and backfills
whose runs are started N at a time by the completions that end the runs before them. How many runs were
RUNNING at once is measured from the runs' own recorded start and finish times."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from typer.testing import CliRunner

from baton.adapters.spanner_store import SpannerRunStore
from baton.domain.backfill import BackfillRecord, BackfillStatus
from baton.domain.records import RunRecord, RunStatus
from baton_cli.app import app
from devstack.stack import LocalStack, LocalStackOptions
from tests.run_watch import wait_for_run

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def small(name: str, *header: str, job_ms: int = 500) -> str:
    """Two chained jobs that read the run's date, each `job_ms` long in the local BigQuery (its duration label)."""
    labels = f"labels: {{sim_duration_ms: '{job_ms}'}}"
    return "\n".join(
        [
            f"name: {name}",
            *header,
            "params:",
            "  run_date: {type: DATE}",
            "jobs:",
            f"  - {{key: first, sql: 'SELECT @run_date AS day', {labels}}}",
            f"  - {{key: second, needs: [first], sql: 'SELECT DATE_ADD(@run_date, INTERVAL 1 DAY) AS day', {labels}}}",
            "",
        ]
    )


MANIFESTS = {
    "one_at_a_time": small("one_at_a_time"),
    "skip_when_busy": small("skip_when_busy", "concurrency: skip"),
    "overlapping": small("overlapping", "concurrency: allow"),
    "held_when_paused": small("held_when_paused", "when_paused: queue"),
    # Runs of a few seconds: far longer than writing a date's run, so the first three dates overlap however
    # loaded the machine is, and the later ones wait.
    "daily_backfill": small("daily_backfill", job_ms=1500),
}


@pytest.fixture(scope="module")
def stack(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    manifests = tmp_path_factory.mktemp("queue-manifests")
    for name, text in MANIFESTS.items():
        (manifests / f"{name}.yaml").write_text(text)
    options = LocalStackOptions(
        work_dir=REPO / ".devstack" / f"queue-{os.getpid()}", job_duration_s=0.5, synth_dir=synth_dir, manifests_dir=manifests
    )
    with LocalStack.start(options) as started:
        yield started


@pytest.fixture(scope="module")
def store(stack: LocalStack) -> SpannerRunStore:
    return SpannerRunStore(stack.database())


def baton(stack: LocalStack, *args: str) -> Any:
    return CliRunner().invoke(app, list(args), env={**stack.client_environment(), "COLUMNS": "200"})


def post_start(stack: LocalStack, body: dict[str, Any]) -> requests.Response:
    return requests.post(stack.fronts["start_manifest"].url, json=body, timeout=120)


def wait_for_backfill(store: SpannerRunStore, backfill_id: str, timeout_s: float = 240) -> BackfillRecord:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        backfill = store.get_backfill(backfill_id)
        if backfill is not None and backfill.status.terminal:
            return backfill
        time.sleep(0.3)
    raise AssertionError(f"backfill {backfill_id} did not end in {timeout_s} s: {store.backfill_runs(backfill_id)}")


def most_running_at_once(runs: list[RunRecord]) -> int:
    """From each run's StartedAt and FinishedAt: at an instant where one run ends and another starts (the same
    transaction), the end counts first."""
    moments: list[tuple[dt.datetime, int]] = []
    for run in runs:
        assert run.started_at is not None and run.finished_at is not None, run
        moments += [(run.started_at, 1), (run.finished_at, -1)]
    running = most = 0
    for _, change in sorted(moments):
        running += change
        most = max(most, running)
    return most


def test_a_second_start_is_queued_and_starts_when_the_first_ends(stack: LocalStack, store: SpannerRunStore) -> None:
    first = stack.start_run("one_at_a_time", {"run_date": "2031-01-01"})
    second = stack.start_run("one_at_a_time", {"run_date": "2031-01-02"})
    assert (first["status"], second["status"]) == ("RUNNING", "QUEUED")
    queued = store.get_run(second["run_id"])
    assert queued is not None and queued.status == RunStatus.QUEUED and queued.started_at is None
    ended = wait_for_run(store, first["run_id"])
    later = wait_for_run(store, second["run_id"])
    assert (ended.status, later.status) == (RunStatus.SUCCEEDED, RunStatus.SUCCEEDED)
    assert later.started_at == ended.finished_at, "started in the transaction that recorded the first run's end"


def test_skip_refuses_a_start_while_a_run_is_in_progress(stack: LocalStack, store: SpannerRunStore) -> None:
    first = stack.start_run("skip_when_busy", {"run_date": "2031-01-01"})
    refused = post_start(stack, {"manifest": "skip_when_busy", "params": {"run_date": "2031-01-02"}})
    assert refused.status_code == 409
    assert refused.json()["error"] == "RunInProgress"
    assert first["run_id"] in refused.json()["message"]
    assert len(store.list_runs(manifest="skip_when_busy")) == 1, "nothing written"
    assert wait_for_run(store, first["run_id"]).status == RunStatus.SUCCEEDED


def test_allow_lets_two_runs_overlap(stack: LocalStack, store: SpannerRunStore) -> None:
    started = [stack.start_run("overlapping", {"run_date": f"2031-01-0{day}"}) for day in (1, 2)]
    assert [body["status"] for body in started] == ["RUNNING", "RUNNING"]
    runs = [wait_for_run(store, body["run_id"]) for body in started]
    assert all(run.status == RunStatus.SUCCEEDED for run in runs)
    assert most_running_at_once(runs) == 2


def test_a_start_while_paused_is_queued_and_runs_on_resume(stack: LocalStack, store: SpannerRunStore) -> None:
    paused = baton(stack, "pause", "held_when_paused", "--reason", "warehouse migration")
    assert paused.exit_code == 0, paused.output
    assert "starts are queued until" in paused.stdout
    held = stack.start_run("held_when_paused", {"run_date": "2031-01-01"})
    assert held["status"] == "QUEUED"
    time.sleep(2)  # long enough for a wrongly submitted job to have finished
    run = store.get_run(held["run_id"])
    assert run is not None and run.status == RunStatus.QUEUED
    assert {job.submitted_at for job in store.list_jobs(held["run_id"])} == {None}
    resumed = baton(stack, "resume", "held_when_paused")
    assert resumed.exit_code == 0, resumed.output
    assert "1 queued run(s) started" in resumed.stdout
    assert wait_for_run(store, held["run_id"]).status == RunStatus.SUCCEEDED


def test_a_30_date_backfill_never_runs_more_than_3_at_once(stack: LocalStack, store: SpannerRunStore) -> None:
    body = {"manifest": "daily_backfill", "backfill": {"from": "2031-03-01", "to": "2031-03-30", "max_active_runs": 3}}
    answer = post_start(stack, body)
    assert answer.status_code == 200, answer.text
    backfill_id = answer.json()["backfill_id"]
    assert [run["date"] for run in answer.json()["runs"]] == [f"2031-03-{day:02d}" for day in range(1, 31)]
    assert wait_for_backfill(store, backfill_id).status == BackfillStatus.SUCCEEDED
    runs = store.backfill_runs(backfill_id)
    assert len(runs) == 30 and {run.status for run in runs} == {RunStatus.SUCCEEDED}
    assert most_running_at_once(runs) == 3
    ends = {run.finished_at for run in runs}
    queued = {run["run_id"] for run in answer.json()["runs"] if run["status"] == "QUEUED"}
    assert len(queued) >= 20
    assert all(run.started_at in ends for run in runs if run.run_id in queued), "each waiting date was started by an end"
    shown = baton(stack, "status", backfill_id, "--json")
    assert shown.exit_code == 0, shown.output
    assert '"SUCCEEDED": 30' in shown.stdout


def test_a_backfill_is_cancelled_and_retried_whole(stack: LocalStack, store: SpannerRunStore) -> None:
    started = baton(stack, "backfill", "daily_backfill", "--from", "2031-05-01", "--to", "2031-05-06", "--max-active-runs", "2")
    assert started.exit_code == 0, started.output
    backfill_id = started.stdout.strip()
    cancelled = baton(stack, "cancel", backfill_id)
    assert cancelled.exit_code == 0, cancelled.output
    runs = store.backfill_runs(backfill_id)
    assert all(run.status.terminal for run in runs)
    assert sum(run.status == RunStatus.CANCELLED for run in runs) >= 4, "the queued dates never started"
    time.sleep(2)
    assert [run.status for run in store.backfill_runs(backfill_id)] == [run.status for run in runs], "nothing started since"
    retried = baton(stack, "retry", backfill_id)
    assert retried.exit_code == 0, retried.output
    assert wait_for_backfill(store, backfill_id).status == BackfillStatus.SUCCEEDED
    final = store.backfill_runs(backfill_id)
    assert {run.status for run in final} == {RunStatus.SUCCEEDED}
    assert most_running_at_once(final) <= 2
