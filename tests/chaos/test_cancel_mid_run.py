"""Cancelling a running 300-job run mid-way: no BigQuery job of it is left running, nothing is submitted after.

The chaos DAG (one root, ten layers of 30, a wide fan-in) runs with its first three layers quick and
every later job taking 60 s in the local BigQuery, so a job the cancel missed would still be RUNNING
when the test looks. The operator cancels (through the operator's core, as `baton cancel` does) once
the three quick layers have succeeded and the fourth is reaching BigQuery: completions are releasing
and submitting it, and the reconciler calls every second, so the cancel meets submissions in flight.
Afterwards every BigQuery job of the run is DONE (the quick ones by themselves, every slow one
stopped by the cancel), no jobs.insert of the run happened after the cancel returned, Spanner shows
nothing open, and run.started and run.cancelled are each delivered.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from baton import bootstrap
from baton.domain.records import JobStatus, RunRecord, RunStatus
from devstack.faults import FaultRule
from tests.chaos.conftest import CHAOS_SEED, AuditRecord, ChaosStack, Scheduler, bigquery_jobs, wait_until
from tests.chaos.dag import layered_dag
from tests.chaos.run_events import RunEventsConsumer

pytestmark = pytest.mark.integration

MANIFEST = "chaos_cancel_wide"
QUICK_LAYERS = ("l00_", "l01_", "l02_")
QUICK_MS, SLOW_MS = 200, 60_000
QUICK_JOBS = 1 + 30 * len(QUICK_LAYERS)  # the root and three layers of 30
INSERT_DELAY_S = 1.0  # every slow job's jobs.insert is held this long before BigQuery creates the job
SETTLE_S = 6  # the reconciler keeps calling this long after the cancel: it must submit nothing


@pytest.fixture(scope="module")
def wide_manifest(chaos: ChaosStack) -> Iterator[str]:
    """The chaos DAG, durations set per job by the label the local BigQuery reads; no injected crashes, no retries."""
    dag = layered_dag(CHAOS_SEED)
    assert len(dag.keys) >= 300

    def job(key: str, needs: tuple[str, ...]) -> dict[str, Any]:
        quick = key == "root" or key.startswith(QUICK_LAYERS)
        labels = {"sim_duration_ms": str(QUICK_MS if quick else SLOW_MS)}
        return {"key": key, "sql": "SELECT 1 AS one", "labels": labels, **({"needs": list(needs)} if needs else {})}

    document = {"name": MANIFEST, "retry": {"max_attempts": 1}, "jobs": [job(key, up) for key, up in dag.needs.items()]}
    path = chaos.manifests_dir / f"{MANIFEST}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    yield MANIFEST
    path.unlink()


@dataclass
class CancelledRun:
    run_id: str
    cancelled: RunRecord
    cancel_returned: dt.datetime
    events: RunEventsConsumer
    scheduler_failures: list[str]


@pytest.fixture(scope="module")
def cancelled_run(chaos: ChaosStack, wide_manifest: str) -> CancelledRun:
    """The run, cancelled mid-way while the reconciler calls every second; then SETTLE_S more of it."""
    stack, store = chaos.stack, chaos.store
    events = RunEventsConsumer.subscribe(stack)
    with stack.client_env():
        # What `baton` uses against this stack, the run-events topic included (without it, run.cancelled would
        # wait in the outbox for the reconciler, older than its resubmit lease, before anyone sees it).
        operator = bootstrap.build(stack.operator_settings())

    faults = stack.fault_client()
    # Slow inserts keep submissions in flight while the cancel commits: a cancel that reaches BigQuery before
    # the job exists finds nothing to stop, so the submitter must stop what it created after the cancel.
    faults.add(FaultRule(method="jobs.insert", delay_s=INSERT_DELAY_S, labels={"sim_duration_ms": str(SLOW_MS)}))
    with faults.injected(), Scheduler(stack) as scheduler:
        run_id = stack.start_run(wide_manifest, {})["run_id"]

        def slow_layer_reaching_bigquery() -> bool:
            run = store.get_run(run_id)
            return run is not None and run.succeeded_jobs >= QUICK_JOBS and len(bigquery_jobs(stack, run_id)) > QUICK_JOBS + 5

        assert wait_until(slow_layer_reaching_bigquery, 120, interval_s=0.1), store.get_run(run_id)
        with stack.client_env():  # the operator's clients, made on first use, talk to this stack's emulators
            cancelled = operator.cancel(run_id)
        cancel_returned = dt.datetime.now(dt.UTC)
        time.sleep(SETTLE_S)
    return CancelledRun(run_id, cancelled, cancel_returned, events, scheduler.failures)


@pytest.mark.timeout(240)
def test_cancelling_a_running_300_job_run_leaves_no_bigquery_job_running(chaos: ChaosStack, cancelled_run: CancelledRun) -> None:
    stack, store = chaos.stack, chaos.store
    run_id, cancelled = cancelled_run.run_id, cancelled_run.cancelled
    assert cancelled_run.scheduler_failures == []

    # The run is cancelled mid-way, with nothing open; late events and the reconciler changed nothing.
    assert cancelled.status == RunStatus.CANCELLED and cancelled.open_jobs == 0
    assert cancelled.succeeded_jobs == QUICK_JOBS and cancelled.cancelled_jobs == cancelled.total_jobs - QUICK_JOBS
    jobs = store.list_jobs(run_id)
    assert Counter(job.status for job in jobs) == Counter(
        {JobStatus.SUCCEEDED: QUICK_JOBS, JobStatus.CANCELLED: len(jobs) - QUICK_JOBS}
    )
    assert store.get_run(run_id) == cancelled

    # No BigQuery job of the run is left running: every slow one (60 s) was stopped, including those
    # whose insert raced the cancel.
    def all_done() -> bool:
        return all(job["state"] == "DONE" for job in bigquery_jobs(stack, run_id))

    assert wait_until(all_done, 15), [
        (job["jobId"], job["state"]) for job in bigquery_jobs(stack, run_id) if job["state"] != "DONE"
    ]
    client = stack.bigquery_client()
    slow = [job for job in bigquery_jobs(stack, run_id) if job["labels"]["sim_duration_ms"] == str(SLOW_MS)]
    assert len(slow) > 5, "the cancel met slow jobs in BigQuery"
    reasons = Counter((client.get_job(str(job["jobId"])).error_result or {}).get("reason") for job in slow)
    assert reasons == Counter({"stopped": len(slow)}), reasons
    audit = AuditRecord.of(stack, run_id)
    assert set(audit.succeeded) == {job.job_key for job in jobs if job.status == JobStatus.SUCCEEDED}

    # The run's events: started, then cancelled, each delivered at least once.
    events = cancelled_run.events
    assert events.wait_for(run_id, "run.cancelled", timeout_s=20), events.of(run_id)
    assert events.types(run_id) == Counter({"run.started": 1, "run.cancelled": 1})


def test_nothing_of_a_cancelled_run_is_submitted_after_the_cancel_returned(
    chaos: ChaosStack, cancelled_run: CancelledRun
) -> None:
    """A job created later than INSERT_DELAY_S after the cancel returned had its jobs.insert asked after it."""
    audit = AuditRecord.of(chaos.stack, cancelled_run.run_id)
    asked_after = cancelled_run.cancel_returned + dt.timedelta(seconds=INSERT_DELAY_S)
    late = {key: times for key, times in audit.inserted.items() if max(times) > asked_after}
    assert late == {}, f"inserted after the cancel returned at {cancelled_run.cancel_returned}: {late}"
