"""The 300-job chaos run again, through the faults Google Cloud has and the emulators do not.

On top of the chaos stack's crash injection, the local stack's fault board (devstack/faults.py,
seeded) refuses a share of jobs.insert calls with 403 rateLimitExceeded / quotaExceeded and 503,
answers jobs.get with 503, makes both slow now and then, truncates DONE audit entries (no
statistics, as Cloud Logging does over 100 KB), slows a tenth of the completion function's
invocations, and caps its front at one request in flight (Cloud Run's 429 beyond max instances x
concurrency, here after a 0.05 s wait). While events flow, the completion function's whole process
group is killed with SIGKILL twice, mid-way through whatever transactions it had open, and started
again on its port, as Cloud Run would start a new instance. The run must still succeed with exactly
one successful BigQuery job per manifest job, in dependency order, leave nothing in flight, and
deliver every run event at least once.

Its file name makes it the package's last test on purpose: after its hundreds of refused pushes and two
killed instances, the Pub/Sub emulator's push loop for the completion subscription delivers a message
that fails every time only a couple of times in two minutes, which would break the poison-message test
of test_dead_letters.py if it ran after this one.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest

from baton.domain.records import RunStatus
from devstack.faults import FaultRule
from tests.chaos.conftest import ChaosStack, Scheduler, assert_each_job_once_in_order, assert_nothing_in_flight, wait_until
from tests.chaos.run_events import RunEventsConsumer
from tests.run_watch import wait_for_run

pytestmark = pytest.mark.integration

RUN_TIMEOUT_S = 240
COMPLETION = "bigquery_job_completed"
COMPLETION_CAPACITY = 1  # requests in flight at once; the next waits INSTANCE_WAIT_S for a slot, then gets 429
INSTANCE_WAIT_S = 0.05  # Cloud Run holds a request up to 30 s; completions here take ~0.1 s, so a short wait refuses some
KILL_AFTER_SUCCEEDED = (60, 180)  # jobs SUCCEEDED in Spanner when the completion function is killed

CLOUD_FAULTS = (
    FaultRule(method="jobs.insert", status=403, reason="rateLimitExceeded", probability=0.10),
    FaultRule(method="jobs.insert", status=403, reason="quotaExceeded", probability=0.03),
    FaultRule(method="jobs.insert", status=503, probability=0.05),
    FaultRule(method="jobs.insert", delay_s=0.5, probability=0.05),
    FaultRule(method="jobs.get", status=503, probability=0.10),
    FaultRule(method="jobs.get", delay_s=0.5, probability=0.10),
    FaultRule(method="jobs.getQueryResults", status=503, probability=0.10),
    FaultRule(method="auditlog.jobDone", truncate=True, probability=0.30),
    FaultRule(method="function.invoke", function=COMPLETION, delay_s=0.3, probability=0.10),  # a slow instance
)


@dataclass
class Killer:
    """Kills the completion function's process group with SIGKILL when the run passes each threshold,
    then serves it again on the same port (LocalStack.restart_function), as Cloud Run replaces an instance."""

    chaos: ChaosStack
    run_id: str
    kills: list[tuple[int, int]] = field(default_factory=list)  # (jobs succeeded at the kill, killed pid)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Killer:
        self._thread = threading.Thread(target=self._loop, name="test-killer", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _loop(self) -> None:
        thresholds = list(KILL_AFTER_SUCCEEDED)
        try:
            while thresholds and not self._stop.is_set():
                run = self.chaos.store.get_run(self.run_id)
                if run is not None and run.succeeded_jobs >= thresholds[0]:
                    thresholds.pop(0)
                    self._kill_and_restart(run.succeeded_jobs)
                self._stop.wait(0.05)
        except Exception as exc:  # reported by the test, which must not pass with a killer that never killed
            self.errors.append(repr(exc))

    def _kill_and_restart(self, succeeded: int) -> None:
        stack = self.chaos.stack
        process = stack.functions[COMPLETION].process
        pid = process.pid
        os.killpg(pid, signal.SIGKILL)  # functions-framework runs in its own session: the group is the instance
        self.kills.append((succeeded, pid))
        time.sleep(1.0)  # pushes meanwhile fail at the front with 503, as on a lost instance
        stack.restart_function(COMPLETION)


@pytest.mark.timeout(420)  # hard bound; the run itself normally takes one to two minutes
def test_a_300_job_run_succeeds_exactly_once_through_cloud_faults_and_a_killed_function(chaos: ChaosStack) -> None:
    stack, dag = chaos.stack, chaos.dag
    faults = stack.fault_client()
    events = RunEventsConsumer.subscribe(stack)
    faults.add(*CLOUD_FAULTS)
    faults.configure(instance_limits=True, instance_overrides={COMPLETION: COMPLETION_CAPACITY}, instance_wait_s=INSTANCE_WAIT_S)
    try:
        with Scheduler(stack) as scheduler:
            run_id = stack.start_run("chaos_dag", {})["run_id"]
            with Killer(chaos, run_id) as killer:
                run = wait_for_run(chaos.store, run_id, RUN_TIMEOUT_S)
            board = faults.state()
            faults.clear()  # the late copies below and the final reconcile see the cloud on a good day
            assert stack.bigquery.bridge.flush(timeout_s=30)
            assert events.wait_for(run_id, "run.succeeded", timeout_s=30), events.of(run_id)
            time.sleep(3)
    finally:
        faults.clear()
    jobs = chaos.store.list_jobs(run_id)

    # The run succeeded and stays so.
    assert run.status == RunStatus.SUCCEEDED, Counter(job.status for job in jobs)
    assert chaos.store.get_run(run_id) == run
    assert (run.total_jobs, run.succeeded_jobs, run.open_jobs) == (len(dag.keys), len(dag.keys), 0)

    assert_each_job_once_in_order(stack, run_id, dag)
    # Nothing in flight: in Spanner, in BigQuery, for the reconciler, in the outbox.
    assert_nothing_in_flight(stack, run_id, jobs)
    with stack.database().snapshot() as snapshot:
        left = list(snapshot.execute_sql("SELECT EventId FROM RunEventOutbox WHERE RunId = @run", params={"run": run_id}))
    assert left == [], "every recorded run event was published"
    assert scheduler.failures == [], "the reconciler answered 200 through every fault"

    # Every run event arrived at least once; copies carry the same event_id.
    assert events.types(run_id) == Counter({"run.started": 1, "run.succeeded": 1})
    succeeded = [event for event in events.distinct(run_id).values() if event["type"] == "run.succeeded"]
    assert succeeded[0]["counts"]["succeeded"] == len(dag.keys)

    # Every fault really happened.
    assert killer.errors == [] and len(killer.kills) == len(KILL_AFTER_SUCCEEDED), killer.kills
    assert all(pid != stack.functions[COMPLETION].process.pid for _, pid in killer.kills), "a new instance serves"
    hits = {
        (rule["method"], rule.get("status"), rule.get("reason"), rule.get("delay_s")): rule["hits"] for rule in board["rules"]
    }
    counters = board["counters"]
    fired = {
        "403 rateLimitExceeded on jobs.insert": hits[("jobs.insert", 403, "rateLimitExceeded", None)],
        "403 quotaExceeded on jobs.insert": hits[("jobs.insert", 403, "quotaExceeded", None)],
        "503 on jobs.insert": hits[("jobs.insert", 503, None, None)],
        "slow jobs.insert": hits[("jobs.insert", None, None, 0.5)],
        "503 on jobs.get": hits[("jobs.get", 503, None, None)],
        "slow jobs.get": hits[("jobs.get", None, None, 0.5)],
        "truncated DONE entry": hits[("auditlog.jobDone", None, None, None)],
        "slow completion instance": hits[("function.invoke", None, None, 0.3)],
        "429 at the completion front": counters.get(f"function.invoke.refused.{COMPLETION}", 0),
    }
    assert [name for name, count in fired.items() if count == 0] == [], (fired, stack.fronts[COMPLETION].peak_in_flight)
    assert wait_until(lambda: stack.functions[COMPLETION].process.alive(), 5)
    print(
        f"\ncloud-fault chaos run: {len(dag.keys)} jobs {run.status}; faults fired: {fired}; kills at {killer.kills}; "
        f"peak pushes in flight {stack.fronts[COMPLETION].peak_in_flight}"
    )
