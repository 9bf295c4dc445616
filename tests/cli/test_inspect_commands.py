"""cost, show, logs and lineage, and the cost in status and runs, over the Spanner emulator."""

from __future__ import annotations

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
    load = next(line for line in status.stdout.splitlines() if " load " in line)
    assert "0.01221 USD" in load, "the job's cost includes its check's"
    runs = invoke("runs", env={"BATON_SLOT_HOUR_PRICE": "0.06"})
    assert runs.exit_code == 0, runs.output
    assert "cost" in runs.stdout.splitlines()[1]
    row = next(line for line in runs.stdout.splitlines() if run_id in line)
    assert "0.003 USD" in row, "3 slot-minutes at 0.06 is 0.003 USD per slot-hour"


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
