"""Holding a run, a run's timeout and a job's timeout, on the local stack with the reconciler calling every second.

Each is checked in the local BigQuery's own job list, not only in Spanner: a held run puts
no new job into BigQuery while its jobs in flight finish, and then runs to its end once
released, one successful BigQuery job per job; a run past its run_timeout, and a job past
its timeout, are stopped in BigQuery (reason `stopped`) and their events are delivered.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from baton import bootstrap
from baton.domain.records import JobStatus, RunStatus
from baton.domain.transitions.hold import is_held
from baton.service.orchestrator import Orchestrator
from tests.chaos.conftest import AuditRecord, ChaosStack, Scheduler, bigquery_jobs, wait_until
from tests.chaos.run_events import RunEventsConsumer

pytestmark = pytest.mark.integration

IN_FLIGHT_MS = 4_000  # the jobs running when the hold comes: long enough to hold while they run
SLOW_MS = 60_000  # a job a timeout must stop: still running long after the test looks
WAIT_HELD_S = 6  # after the in-flight jobs finished, the reconciler (every second, lease 2 s) has this long to submit

MANIFESTS: dict[str, dict[str, Any]] = {
    "chaos_hold": {
        "name": "chaos_hold",
        "retry": {"max_attempts": 1},
        "jobs": [
            {"key": "root", "sql": "SELECT 1 AS one"},
            *(
                {"key": f"mid_{n}", "sql": "SELECT 1 AS one", "needs": ["root"], "labels": {"sim_duration_ms": str(IN_FLIGHT_MS)}}
                for n in range(4)
            ),
            *({"key": f"after_{n}", "sql": "SELECT 1 AS one", "needs": [f"mid_{n}"]} for n in range(4)),
            {"key": "sink", "sql": "SELECT 1 AS one", "needs": [f"after_{n}" for n in range(4)]},
        ],
    },
    "chaos_run_timeout": {
        "name": "chaos_run_timeout",
        "run_timeout": "4s",
        "retry": {"max_attempts": 1},
        "jobs": [
            {"key": "quick", "sql": "SELECT 1 AS one"},
            *(
                {"key": f"slow_{n}", "sql": "SELECT 1 AS one", "needs": ["quick"], "labels": {"sim_duration_ms": str(SLOW_MS)}}
                for n in range(2)
            ),
            {"key": "after", "sql": "SELECT 1 AS one", "needs": ["slow_0", "slow_1"]},
        ],
    },
    "chaos_job_timeout": {
        "name": "chaos_job_timeout",
        "retry": {"max_attempts": 1},
        "jobs": [
            {"key": "stuck", "sql": "SELECT 1 AS one", "timeout": "3s", "labels": {"sim_duration_ms": str(SLOW_MS)}},
            {"key": "after", "sql": "SELECT 1 AS one", "needs": ["stuck"]},
        ],
    },
}


@pytest.fixture(scope="module")
def manifests(chaos: ChaosStack) -> Iterator[None]:
    paths = []
    for name, document in MANIFESTS.items():
        path = chaos.manifests_dir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        paths.append(path)
    yield
    for path in paths:
        path.unlink()


@pytest.fixture(scope="module")
def operator(chaos: ChaosStack) -> Orchestrator:
    """What `baton` uses against this stack."""
    with chaos.stack.client_env():
        return bootstrap.build(chaos.stack.operator_settings())


def stop_reasons(chaos: ChaosStack, jobs: list[dict[str, Any]]) -> Counter[str | None]:
    client = chaos.stack.bigquery_client()
    return Counter((client.get_job(str(job["jobId"])).error_result or {}).get("reason") for job in jobs)


@pytest.mark.timeout(180)
def test_a_held_run_submits_nothing_new_while_in_flight_jobs_finish_and_succeeds_once_released(
    chaos: ChaosStack, manifests: None, operator: Orchestrator
) -> None:
    stack, store = chaos.stack, chaos.store
    events = RunEventsConsumer.subscribe(stack)
    with Scheduler(stack) as scheduler:
        run_id = stack.start_run("chaos_hold", {})["run_id"]
        # root + 4 mid
        assert wait_until(lambda: len(bigquery_jobs(stack, run_id)) == 5, 60), bigquery_jobs(stack, run_id)
        with stack.client_env():
            held, changed = operator.hold(run_id, "test hold")
        assert changed and is_held(held)

        mids = [f"mid_{n}" for n in range(4)]

        def in_flight_recorded() -> bool:
            jobs = {job.job_key: job for job in store.list_jobs(run_id)}
            return all(jobs[key].status == JobStatus.SUCCEEDED for key in mids)

        assert wait_until(in_flight_recorded, 60), store.list_jobs(run_id)
        time.sleep(WAIT_HELD_S)  # the reconciler passes over the READY jobs, again and again
        jobs = {job.job_key: job for job in store.list_jobs(run_id)}
        assert {jobs[f"after_{n}"].status for n in range(4)} == {JobStatus.READY}, "released, and waiting"
        assert sorted(job["labels"]["baton_job"] for job in bigquery_jobs(stack, run_id)) == sorted(["root", *mids]), (
            "nothing new reached BigQuery while held"
        )
        run = store.get_run(run_id)
        assert run is not None and run.status == RunStatus.RUNNING and is_held(run)

        with stack.client_env():
            _, handed = operator.release(run_id)
        assert handed == 4

        def ended() -> bool:
            run = store.get_run(run_id)
            return run is not None and run.status.terminal

        assert wait_until(ended, 60), store.get_run(run_id)
    assert scheduler.failures == []
    run = store.get_run(run_id)
    assert run is not None and run.status == RunStatus.SUCCEEDED
    keys = [job["key"] for job in MANIFESTS["chaos_hold"]["jobs"]]
    assert AuditRecord.of(stack, run_id).successes() == Counter(dict.fromkeys(keys, 1)), "one successful BigQuery job per job"
    assert Counter(job["labels"]["baton_job"] for job in bigquery_jobs(stack, run_id)) == Counter(dict.fromkeys(keys, 1))
    assert events.wait_for(run_id, "run.succeeded", timeout_s=20), events.of(run_id)
    assert events.types(run_id) == Counter({"run.started": 1, "run.held": 1, "run.released": 1, "run.succeeded": 1})


@pytest.mark.timeout(180)
def test_a_run_past_its_run_timeout_is_cancelled_in_bigquery_and_publishes_run_timed_out(
    chaos: ChaosStack, manifests: None
) -> None:
    stack, store = chaos.stack, chaos.store
    events = RunEventsConsumer.subscribe(stack)
    with Scheduler(stack) as scheduler:
        run_id = stack.start_run("chaos_run_timeout", {})["run_id"]

        def cancelled() -> bool:
            run = store.get_run(run_id)
            return run is not None and run.status == RunStatus.CANCELLED

        assert wait_until(cancelled, 60), store.get_run(run_id)
    assert scheduler.failures == []
    assert scheduler.total("timed_out_runs") == 1
    run = store.get_run(run_id)
    assert run is not None and run.end_reason == "timeout: the run ran past its run_timeout of 4s"
    assert (run.succeeded_jobs, run.cancelled_jobs, run.open_jobs) == (1, 3, 0)

    slow = [job for job in bigquery_jobs(stack, run_id) if job["labels"]["baton_job"].startswith("slow_")]
    assert len(slow) == 2
    assert wait_until(lambda: all(job["state"] == "DONE" for job in bigquery_jobs(stack, run_id)), 15)
    assert stop_reasons(chaos, slow) == Counter({"stopped": 2}), "stopped in BigQuery, as `baton cancel` does"
    assert events.wait_for(run_id, "run.cancelled", timeout_s=20), events.of(run_id)
    assert events.types(run_id) == Counter({"run.started": 1, "run.timed_out": 1, "run.cancelled": 1})
    timed_out = next(event for event in events.of(run_id) if event["type"] == "run.timed_out")
    assert (timed_out["reason"], timed_out["timeout_seconds"]) == (run.end_reason, 4)


@pytest.mark.timeout(180)
def test_a_job_past_its_timeout_is_cancelled_in_bigquery_and_fails_with_reason_timeout(
    chaos: ChaosStack, manifests: None
) -> None:
    stack, store = chaos.stack, chaos.store
    events = RunEventsConsumer.subscribe(stack)
    with Scheduler(stack) as scheduler:
        run_id = stack.start_run("chaos_job_timeout", {})["run_id"]

        def failed() -> bool:
            run = store.get_run(run_id)
            return run is not None and run.status == RunStatus.FAILED

        assert wait_until(failed, 60), store.list_jobs(run_id)
    assert scheduler.failures == []
    jobs = {job.job_key: job for job in store.list_jobs(run_id)}
    assert (jobs["stuck"].status, jobs["stuck"].error_reason) == (JobStatus.FAILED, "timeout")
    assert jobs["after"].status == JobStatus.SKIPPED
    (stuck,) = bigquery_jobs(stack, run_id)
    assert wait_until(lambda: all(job["state"] == "DONE" for job in bigquery_jobs(stack, run_id)), 15)
    assert stop_reasons(chaos, [stuck]) == Counter({"stopped": 1})
    assert events.wait_for(run_id, "run.failed", timeout_s=20), events.of(run_id)
    failures = [event for event in events.of(run_id) if event["type"] == "job.failed"]
    assert failures and {event["job"]["error_reason"] for event in failures} == {"timeout"}
