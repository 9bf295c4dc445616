"""Cancelling a running 300-job run mid-way: no BigQuery job of it is left running, nothing is submitted after.

The chaos DAG (one root, ten layers of 30, a wide fan-in) runs with jobs that take 1.5 s in the local
BigQuery, so that when the operator cancels (through the operator's core, as `baton cancel` does) a
layer is RUNNING in BigQuery, completions are releasing the next one and the reconciler is calling
every second: the cancel meets submissions in flight. Afterwards every BigQuery job of the run is
DONE (finished before the cancel, or stopped by it), no jobs.insert of the run happened after the
cancel returned, Spanner shows nothing open, and the run.cancelled event is published.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import requests

from baton import bootstrap
from baton.domain.records import JobStatus, RunStatus
from tests.chaos.conftest import CHAOS_SEED, AuditRecord, ChaosStack, Scheduler, wait_until
from tests.chaos.dag import layered_dag, write_manifest
from tests.chaos.run_events import RunEventsConsumer

pytestmark = pytest.mark.integration

MANIFEST = "chaos_cancel_wide"
JOB_MS = 1500
CANCEL_AFTER_SUCCEEDED = 90  # about three layers in: the run is far from done
SETTLE_S = 6  # the reconciler keeps calling this long after the cancel: it must submit nothing


@pytest.fixture(scope="module")
def wide_manifest(chaos: ChaosStack) -> Iterator[str]:
    """The chaos DAG with slow jobs (a manifest label the local BigQuery reads) and no injected crashes."""
    path = write_manifest(
        layered_dag(CHAOS_SEED), chaos.manifests_dir, MANIFEST, labels={"sim_duration_ms": str(JOB_MS)}, retry={"max_attempts": 1}
    )
    yield MANIFEST
    path.unlink()


def _facade_jobs(chaos: ChaosStack, run_id: str) -> list[dict[str, object]]:
    listed = requests.get(f"{chaos.stack.bigquery.endpoint}/_facade/jobs", timeout=10).json()["jobs"]
    return [job for job in listed if job["labels"].get("baton_run") == run_id]


@pytest.mark.timeout(240)
def test_cancelling_a_running_300_job_run_leaves_no_bigquery_job_running(chaos: ChaosStack, wide_manifest: str) -> None:
    stack, store = chaos.stack, chaos.store
    events = RunEventsConsumer.subscribe(stack)
    with stack.client_env():
        operator = bootstrap.build(chaos.settings())

    with Scheduler(stack) as scheduler:
        run_id = stack.start_run(wide_manifest, {})["run_id"]

        def far_enough() -> bool:
            run = store.get_run(run_id)
            return run is not None and run.succeeded_jobs >= CANCEL_AFTER_SUCCEEDED

        assert wait_until(far_enough, 120, interval_s=0.1), store.get_run(run_id)
        running_at_cancel = [job for job in _facade_jobs(chaos, run_id) if job["state"] == "RUNNING"]
        cancelled = operator.cancel(run_id)
        cancel_returned = dt.datetime.now(dt.UTC)
        time.sleep(SETTLE_S)
    assert scheduler.failures == []

    # The run is cancelled, mid-way, with nothing open.
    assert cancelled.status == RunStatus.CANCELLED and cancelled.open_jobs == 0
    assert CANCEL_AFTER_SUCCEEDED <= cancelled.succeeded_jobs < cancelled.total_jobs
    assert running_at_cancel, "the cancel met BigQuery jobs running"
    jobs = store.list_jobs(run_id)
    assert Counter(job.status for job in jobs).keys() <= {JobStatus.SUCCEEDED, JobStatus.CANCELLED}
    assert store.get_run(run_id) == cancelled, "late completions and the reconciler changed nothing"

    # No BigQuery job of the run is left running: what ran at the cancel was stopped.
    assert wait_until(lambda: all(job["state"] == "DONE" for job in _facade_jobs(chaos, run_id)), 15), [
        (job["jobId"], job["state"]) for job in _facade_jobs(chaos, run_id) if job["state"] != "DONE"
    ]
    client = stack.bigquery_client()
    reasons = Counter((client.get_job(str(job["jobId"])).error_result or {}).get("reason") for job in running_at_cancel)
    assert reasons["stopped"] > 0 and set(reasons) <= {"stopped", None}, reasons  # None: it finished before the cancel

    # Nothing was submitted after the cancel returned, by a completion or by the reconciler.
    audit = AuditRecord.of(stack, run_id)
    late = {key: times for key, times in audit.inserted.items() if max(times) > cancel_returned}
    assert late == {}, f"inserted after the cancel returned at {cancel_returned}: {late}"

    # The run's events: started, then cancelled, each delivered at least once.
    assert events.wait_for(run_id, "run.cancelled", timeout_s=20), events.of(run_id)
    assert events.types(run_id) == Counter({"run.started": 1, "run.cancelled": 1})
