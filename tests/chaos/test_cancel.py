"""Cancelling a run on the local stack: no new submissions, BigQuery cancels what runs, late events change nothing."""

from __future__ import annotations

import datetime as dt

import pytest

from baton import bootstrap
from baton.domain.records import JobStatus, RunStatus
from devstack.audit_bridge import AuditJob
from tests.chaos.conftest import AuditRecord, ChaosStack, wait_until

pytestmark = pytest.mark.integration


def test_cancel_stops_submissions_cancels_bigquery_jobs_and_ignores_late_completions(chaos: ChaosStack) -> None:
    stack, store = chaos.stack, chaos.store
    run_id = stack.start_run("chaos_cancel", {})["run_id"]

    # warm_up finishes at once and releases the two 60 s jobs; after_slow waits on both.
    def submitted() -> set[str]:
        return {job.job_key for job in store.list_jobs(run_id) if job.status == JobStatus.SUBMITTED}

    assert wait_until(lambda: submitted() == {"slow_a", "slow_b"}, 30)
    slow_ids = {j.job_key: str(j.bigquery_job_id) for j in store.list_jobs(run_id) if j.job_key.startswith("slow_")}
    project = stack.topology.project
    assert {stack.bigquery.facade.job_state(project, job_id) for job_id in slow_ids.values()} == {"RUNNING"}

    # What the operator CLI does: the same core, pointed at this stack.
    with stack.client_env():
        operator = bootstrap.build(chaos.settings())
    cancelled = operator.cancel(run_id)

    assert cancelled.status == RunStatus.CANCELLED
    assert cancelled.cancelled_jobs == 3 and cancelled.succeeded_jobs == 1 and cancelled.open_jobs == 0
    for job_id in slow_ids.values():
        assert stack.bigquery.facade.wait_done(project, job_id, timeout_s=10)
    client = stack.bigquery_client()
    for job_id in slow_ids.values():
        job = client.get_job(job_id)
        assert job.state == "DONE" and job.error_result is not None and job.error_result["reason"] == "stopped"
    before = (store.get_run(run_id), store.list_jobs(run_id))

    # BigQuery's own DONE events of the stopped jobs arrive, and so does a late success
    # (as if slow_a had finished just before the cancel reached BigQuery).
    late = AuditJob(
        project=project,
        job_id=slow_ids["slow_a"],
        location="US",
        query="SELECT 2 AS two",
        labels={"baton_env": "dev", "baton_run": run_id, "baton_job": "slow_a", "baton_attempt": "1"},
        create_time=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5),
        end_time=dt.datetime.now(dt.UTC),
    )
    stack.bigquery.bridge.job_done(late)
    assert stack.bigquery.bridge.flush(timeout_s=10)

    def late_verdicts() -> list[str]:
        lines = chaos.handler_lines(run_id)
        return [str(ln["verdict"]) for ln in lines if ln["message"] == "completion applied" and ln["job_key"] != "warm_up"]

    assert wait_until(lambda: len(late_verdicts()) >= 3, 20), chaos.handler_lines(run_id)
    assert set(late_verdicts()) == {"duplicate"}  # the jobs are CANCELLED at this attempt: late outcomes are no-ops
    stack.reconcile()
    assert (store.get_run(run_id), store.list_jobs(run_id)) == before

    audit = AuditRecord.of(stack, run_id)
    assert "after_slow" not in audit.inserted, "nothing is submitted after the cancel"
    assert {j.job_key: j.status for j in before[1]} == {
        "warm_up": JobStatus.SUCCEEDED,
        "slow_a": JobStatus.CANCELLED,
        "slow_b": JobStatus.CANCELLED,
        "after_slow": JobStatus.CANCELLED,
    }
