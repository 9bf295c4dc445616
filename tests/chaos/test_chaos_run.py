"""A 300-job run through duplicated, delayed, reordered and dropped events, crashes and transient failures.

Faults are drawn from a seed per job key before the run starts: the audit-log bridge
drops, duplicates or delays the matching completion entries, the local BigQuery fails
chosen jobs once with a retryable reason, and the completion function (served by
devstack/chaos_main.py) dies before jobs.insert in a tenth of its invocations. The
test plays Cloud Scheduler and calls reconcile every second. The run must still
succeed with exactly one successful BigQuery job per manifest job.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from baton.domain.records import JobStatus, RunStatus
from tests.chaos.conftest import CHAOS_SEED, ChaosStack, Scheduler, assert_each_job_once_in_order, assert_nothing_in_flight
from tests.chaos.dag import Dag
from tests.run_watch import wait_for_run

pytestmark = pytest.mark.integration

DROP, DUPLICATE, DELAY, FAIL_ONCE = 0.05, 0.30, 0.20, 0.05
RETRYABLE = ("backendError", "rateLimitExceeded", "internalError")
RUN_TIMEOUT_S = 300


def _done_entry_of(key: str) -> Callable[[Mapping[str, Any]], bool]:
    """Matches the completion entries of manifest job `key` (only chaos_dag has such keys)."""

    def match(entry: Mapping[str, Any]) -> bool:
        job = entry["protoPayload"]["metadata"].get("jobChange", {}).get("job", {})
        return bool(job.get("jobConfig", {}).get("labels", {}).get("baton_job") == key)

    return match


@dataclass
class FaultPlan:
    """Which job's first completion entry is dropped, duplicated or delayed, and which jobs fail once."""

    dropped: list[str] = field(default_factory=list)
    duplicated: dict[str, tuple[int, float]] = field(default_factory=dict)  # copies, gap
    delayed: dict[str, float] = field(default_factory=dict)  # seconds
    failing: dict[str, str] = field(default_factory=dict)  # reason

    @classmethod
    def draw(cls, dag: Dag, seed: int) -> FaultPlan:
        rng = random.Random(seed)
        keys = dag.keys
        shuffled = rng.sample(keys, len(keys))
        n_drop, n_dup, n_delay = (round(len(keys) * share) for share in (DROP, DUPLICATE, DELAY))
        plan = cls(dropped=shuffled[:n_drop])
        for key in shuffled[n_drop : n_drop + n_dup]:
            plan.duplicated[key] = (rng.choice((2, 2, 3)), rng.uniform(0.0, 2.0))
        for key in shuffled[n_drop + n_dup : n_drop + n_dup + n_delay]:
            plan.delayed[key] = rng.uniform(0.5, 8.0)  # past the reconciler's 3 s now and then
        for key in rng.sample(keys, round(len(keys) * FAIL_ONCE)):
            plan.failing[key] = rng.choice(RETRYABLE)
        return plan

    def arm(self, chaos: ChaosStack) -> None:
        for key in self.dropped:
            chaos.policy.drop(_done_entry_of(key))
        for key, (copies, gap) in self.duplicated.items():
            chaos.policy.duplicate(_done_entry_of(key), copies=copies, gap_s=gap)
        for key, seconds in self.delayed.items():
            chaos.policy.delay(_done_entry_of(key), seconds)
        for key, reason in self.failing.items():
            chaos.stack.bigquery.facade.inject_failure(_first_attempt_of(key), reason=reason, times=1)


def _first_attempt_of(key: str) -> Callable[[str, Mapping[str, str]], bool]:
    def match(_job_id: str, labels: Mapping[str, str]) -> bool:
        return labels.get("baton_job") == key and labels.get("baton_attempt") == "1"

    return match


@pytest.mark.timeout(360)  # hard bound; the run itself normally takes under a minute
def test_a_300_job_run_succeeds_exactly_once_through_chaos(chaos: ChaosStack, capsys: pytest.CaptureFixture[str]) -> None:
    dag = chaos.dag
    assert len(dag.keys) >= 300 and max(map(len, dag.dependents().values())) >= 20 and max(map(len, dag.needs.values())) >= 20
    plan = FaultPlan.draw(dag, CHAOS_SEED)
    plan.arm(chaos)
    stack = chaos.stack
    published_before = len(stack.bigquery.bridge.published)

    started = time.monotonic()
    with Scheduler(stack) as scheduler:
        run_id = stack.start_run("chaos_dag", {})["run_id"]
        run = wait_for_run(chaos.store, run_id, RUN_TIMEOUT_S)
        run_seconds = time.monotonic() - started
        # Late copies (delayed, duplicated, redelivered after a crash) still arrive: they must change nothing.
        assert stack.bigquery.bridge.flush(timeout_s=30)
        time.sleep(3)
    jobs = chaos.store.list_jobs(run_id)
    after = chaos.store.get_run(run_id)

    # The run succeeded, and late events did not move it.
    assert run.status == RunStatus.SUCCEEDED, Counter(job.status for job in jobs)
    assert after == run
    assert (run.total_jobs, run.succeeded_jobs, run.open_jobs) == (len(dag.keys), len(dag.keys), 0)

    audit = assert_each_job_once_in_order(stack, run_id, dag)
    assert_nothing_in_flight(stack, run_id, jobs)
    assert scheduler.failures == []

    # Every fault was injected as planned, and healed.
    injected_rules = [rule for rule in chaos.policy.rules if rule.remaining == 0]
    assert len(injected_rules) == len(plan.dropped) + len(plan.duplicated) + len(plan.delayed)
    crashes = [c for c in chaos.crashes() if c["labels"].get("baton_run") == run_id]
    crashed_jobs = {crash["labels"]["baton_job"] for crash in crashes}
    retried = {job.job_key for job in jobs if job.attempt > 1}
    assert retried == set(plan.failing)
    assert all(job.attempt == 2 for job in jobs if job.job_key in plan.failing)
    assert crashes, "the crash injection never fired"
    assert scheduler.total("healed") >= len(plan.dropped), "every dropped event is healed from BigQuery's job state"
    assert scheduler.total("submitted") >= len(crashes), "every crash leaves READY jobs that the reconciler submits"
    verdicts = Counter(line.get("verdict") for line in chaos.handler_lines(run_id) if line.get("message") == "completion applied")
    extra_copies = sum(copies - 1 for copies, _ in plan.duplicated.values())
    assert verdicts["duplicate"] + verdicts["stale"] >= extra_copies

    status = {job.job_key: job.status for job in jobs}
    once = audit.successes()

    def healed(keys: Iterable[str]) -> int:
        """Jobs hit by a fault that still ended SUCCEEDED with exactly one successful BigQuery job."""
        return sum(1 for key in keys if status[key] == JobStatus.SUCCEEDED and once[key] == 1)

    rows = [
        ("completion event dropped", len(plan.dropped), healed(plan.dropped), "reconciler, from BigQuery's job state"),
        ("completion event duplicated", len(plan.duplicated), healed(plan.duplicated), "idempotent transitions"),
        ("completion event delayed, reordered", len(plan.delayed), healed(plan.delayed), "monotonic transitions"),
        ("crash after commit, before jobs.insert", len(crashes), healed(crashed_jobs), "reconciler submits READY jobs"),
        ("retryable BigQuery failure, once", len(plan.failing), healed(retried), "retry policy, after backoff"),
    ]
    assert all(injected == fixed for _, injected, fixed, _ in rows[:3] + rows[4:])
    assert healed(crashed_jobs) == len(crashed_jobs), "every job a crash stranded was submitted later, once"
    with capsys.disabled():
        print(f"\n\nchaos run: {len(dag.keys)} jobs, depth {dag.depth()}, {run.status} in {run_seconds:.1f} s")
        print(f"{'fault':42}{'injected':>9}{'healed':>8}  by")
        for name, injected, fixed, how in rows:
            print(f"{name:42}{injected:>9}{fixed:>8}  {how}")
        mean = sum(scheduler.durations) / len(scheduler.durations)
        truncated = sum(bool(report["truncated"]) for report in scheduler.reports)
        published = len(stack.bigquery.bridge.published) - published_before
        print(
            f"reconcile: {len(scheduler.reports)} calls (mean {mean:.2f} s), submitted {scheduler.total('submitted')}, "
            f"healed {scheduler.total('healed')}, checked running {scheduler.total('checked_running')}, truncated {truncated}"
        )
        releasing = sum(
            1 for line in chaos.handler_lines(run_id) if line.get("message") == "completion applied" and line["released"]
        )
        print(f"completion verdicts: {dict(verdicts)}; audit entries published {published}")
        print(f"crashes: {len(crashes)} of {releasing} completion invocations that reached jobs.insert")
