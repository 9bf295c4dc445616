"""1,000-job runs through every wide path on the local stack, with the commit budget lowered so each chunks.

Each shape proves the same four things: the run ends as it should, BigQuery ran each job
at most once successfully, no job started before its upstreams ended, and no handler hit
the commit budget (the store refuses such a commit, and the handler would log it).
"""

from __future__ import annotations

import pytest

from baton import bootstrap
from baton.domain.records import JobStatus, RunStatus
from tests.chaos.conftest import AuditRecord, wait_until
from tests.run_watch import wait_for_run
from tests.scale.conftest import BUDGET, WIDTH, ScaleStack

pytestmark = pytest.mark.integration
RUN_TIMEOUT_S = 600


def _no_commit_over_budget(scale: ScaleStack) -> None:
    log = scale.handler_log()
    assert "CommitTooLarge" not in log and "over the budget" not in log
    assert scale.store.jobs_per_commit < WIDTH, f"budget {BUDGET} must make a {WIDTH}-wide release chunk"


def test_a_wide_fan_out_and_fan_in_succeeds_with_one_bigquery_job_per_job(scale: ScaleStack) -> None:
    run_id = scale.stack.start_run("wide", {})["run_id"]
    run = wait_for_run(scale.store, run_id, timeout_s=RUN_TIMEOUT_S)
    assert (run.status, run.succeeded_jobs) == (RunStatus.SUCCEEDED, WIDTH + 2)
    audit = AuditRecord.of(scale.stack, run_id)
    assert set(audit.successes().values()) == {1} and len(audit.successes()) == WIDTH + 2
    root_end = audit.end_time[("root", 1)]
    assert all(audit.insert_time[(f"m{index:04d}", 1)] >= root_end for index in range(WIDTH))
    assert audit.insert_time[("sink", 1)] >= max(audit.end_time[(f"m{index:04d}", 1)] for index in range(WIDTH))
    assert scale.store.get_jobs(run_id, ["root"])[0].release_cursor is None, "the release ran to its end"
    _no_commit_over_budget(scale)


def test_a_root_failure_skips_the_whole_dag_and_a_retry_after_the_fix_succeeds(scale: ScaleStack) -> None:
    run_id = scale.stack.start_run("gated", {})["run_id"]
    run = wait_for_run(scale.store, run_id, timeout_s=RUN_TIMEOUT_S)
    assert (run.status, run.failed_jobs, run.skipped_jobs, run.open_jobs) == (RunStatus.FAILED, 1, WIDTH + 1, 0)
    assert set(AuditRecord.of(scale.stack, run_id).inserted) == {"root"}, "nothing behind the failure reached BigQuery"

    scale.stack.create_datasets(["scale"])
    scale.stack.bigquery_client().query("CREATE TABLE scale.gate AS SELECT 1 AS one").result()
    with scale.stack.client_env():
        operator = bootstrap.build(scale.settings())
        operator.retry(run_id)
    run = wait_for_run(scale.store, run_id, timeout_s=RUN_TIMEOUT_S)
    assert (run.status, run.succeeded_jobs) == (RunStatus.SUCCEEDED, WIDTH + 2)
    audit = AuditRecord.of(scale.stack, run_id)
    assert set(audit.successes().values()) == {1} and len(audit.successes()) == WIDTH + 2
    _no_commit_over_budget(scale)


def test_cancelling_a_wide_running_run_leaves_nothing_running_in_bigquery(scale: ScaleStack) -> None:
    run_id = scale.stack.start_run("slow", {})["run_id"]

    def submitted() -> int:
        return sum(1 for job in scale.store.list_jobs(run_id) if job.status == JobStatus.SUBMITTED)

    assert wait_until(lambda: submitted() >= WIDTH // 2, 300), submitted()
    with scale.stack.client_env():
        operator = bootstrap.build(scale.settings())
        cancelled = operator.cancel(run_id)
    assert (cancelled.status, cancelled.open_jobs, cancelled.cancelled_jobs) == (RunStatus.CANCELLED, 0, WIDTH + 1)
    project = scale.stack.topology.project
    facade = scale.stack.bigquery.facade
    inserted = AuditRecord.of(scale.stack, run_id).inserted
    job_ids = [str(job.bigquery_job_id) for job in scale.store.list_jobs(run_id) if job.job_key in inserted]
    assert len(job_ids) >= WIDTH // 2
    assert wait_until(lambda: all(facade.job_state(project, job_id) == "DONE" for job_id in job_ids), 60)
    # Work handed on before the cancel (submit batches) must not start anything afterwards.
    assert not wait_until(lambda: facade_running(scale, run_id), 5), "a job of the cancelled run is running"
    _no_commit_over_budget(scale)


def facade_running(scale: ScaleStack, run_id: str) -> bool:
    project = scale.stack.topology.project
    for job in scale.store.list_jobs(run_id):
        if job.bigquery_job_id and scale.stack.bigquery.facade.job_state(project, job.bigquery_job_id) in ("PENDING", "RUNNING"):
            return True
    return False
