"""A local stack of its own for the reliability suites: crash-injecting handlers, short reconciler times.

It is the real stack (emulators, local BigQuery with its audit-log bridge, the
handlers under functions-framework) with three differences, all from outside
production code: functions-framework serves devstack/chaos_main.py (the real
handlers, dying before jobs.insert when drawn), the audit-log bridge takes a
ChaosPolicy that tests fill, and the reconciler's times are seconds, not minutes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from baton.adapters.spanner_store import SpannerRunStore
from baton.config import Settings
from baton.domain.records import JobRecord, JobStatus
from cdk.config import BATON_POOLS as ENVIRONMENT_POOLS
from devstack.audit_bridge import ChaosPolicy
from devstack.stack import REPO, LocalStack, LocalStackOptions
from devstack.topology import load_topology
from tests.chaos.dag import Dag, layered_dag, write_manifest

CHAOS_SEED = 20261127
CRASH_PROBABILITY = 0.10
CRASH_LABEL = "chaos"  # only jobs of manifests labelled so can crash: the other suites here stay deterministic
RECONCILE_PERIOD_S = 1.0  # how often the tests call reconcile, as Cloud Scheduler would
RECONCILE_ENV = {
    "BATON_RECONCILE_INTERVAL_S": str(RECONCILE_PERIOD_S),
    "BATON_RECONCILE_LOST_AFTER_S": "3",
    "BATON_RECONCILE_RESUBMIT_AFTER_S": "2",
    "BATON_RECONCILE_STALLED_AFTER_S": "10",
    "BATON_RECONCILE_ABANDON_CREATING_AFTER_S": "120",
    # Small pages, so that a 300-job run makes the reconciler page through its open jobs.
    "BATON_RECONCILE_BATCH": "25",
    "BATON_RECONCILE_MAX_PAGES": "4",
}

# Pools of the chaos stack (BATON_POOLS), beside the dev environment's: a pool of 10 for the 500-job fan-out,
# and a pool of one, whose freed slot must go to the job queued behind it (tests/chaos/test_pools.py).
FANOUT_POOL, FANOUT_POOL_SIZE, SOLO_POOL = "chaos_fanout", 10, "chaos_solo"
CHAOS_POOLS = {**ENVIRONMENT_POOLS, FANOUT_POOL: FANOUT_POOL_SIZE, SOLO_POOL: 1}

# Small manifests for the cancellation, retry and poison tests; `sim_duration_ms` sets a job's simulated run time.
SMALL_MANIFESTS: dict[str, dict[str, Any]] = {
    "chaos_cancel": {
        "name": "chaos_cancel",
        "jobs": [
            {"key": "warm_up", "sql": "SELECT 1 AS one"},
            {"key": "slow_a", "sql": "SELECT 2 AS two", "needs": ["warm_up"], "labels": {"sim_duration_ms": "60000"}},
            {"key": "slow_b", "sql": "SELECT 3 AS three", "needs": ["warm_up"], "labels": {"sim_duration_ms": "60000"}},
            {"key": "after_slow", "sql": "SELECT 4 AS four", "needs": ["slow_a", "slow_b"]},
        ],
    },
    "chaos_retry": {
        "name": "chaos_retry",
        "retry": {"max_attempts": 3, "backoff_seconds": 2},
        "jobs": [
            {"key": "flaky", "sql": "SELECT 1 AS one"},
            {"key": "throttled", "sql": "SELECT 1 AS one"},
            {"key": "hiccup", "sql": "SELECT 1 AS one"},
            {"key": "picky", "sql": "SELECT 1 AS one", "retry": {"max_attempts": 3, "retryable_reasons": ["rateLimitExceeded"]}},
            {"key": "denied", "sql": "SELECT 1 AS one"},
            {"key": "missing", "sql": "SELECT 1 AS one"},
            {"key": "bad_sql", "sql": "SELECT no_such_column FROM (SELECT 1 AS one)"},
            {"key": "behind_bad_sql", "sql": "SELECT 1 AS one", "needs": ["bad_sql"]},
            {"key": "behind_retries", "sql": "SELECT 1 AS one", "needs": ["flaky", "throttled", "hiccup"]},
        ],
    },
    "chaos_poison": {
        "name": "chaos_poison",
        "jobs": [{"key": "victim", "sql": "SELECT 1 AS one", "labels": {"sim_duration_ms": "2000"}}],
    },
}


@dataclass
class ChaosStack:
    stack: LocalStack
    store: SpannerRunStore
    policy: ChaosPolicy
    dag: Dag
    crash_record: Path
    manifests_dir: Path

    @property
    def completion_log(self) -> Path:
        return self.stack.functions["bigquery_job_completed"].process.log_path

    def settings(self) -> Settings:
        """What the CLI would use to reach this stack from outside the functions."""
        return Settings(
            environment=self.stack.options.environment,
            project=self.stack.topology.project,
            spanner_instance=self.stack.settings["BATON_SPANNER_INSTANCE"],
            spanner_database=self.stack.settings["BATON_SPANNER_DATABASE"],
            bigquery_location=self.stack.settings.get("BATON_BQ_LOCATION", "US"),
            manifests_dir=self.manifests_dir,
            bigquery_endpoint=self.stack.bigquery.endpoint,
            pools=CHAOS_POOLS,
        )

    def crashes(self) -> list[dict[str, Any]]:
        if not self.crash_record.exists():
            return []
        return [json.loads(line) for line in self.crash_record.read_text().splitlines() if line.strip()]

    def handler_lines(self, run_id: str) -> list[dict[str, Any]]:
        """The completion function's JSON log lines about one run."""
        lines = []
        for raw in self.completion_log.read_text(errors="replace").splitlines():
            if raw.startswith("{") and run_id in raw:
                try:
                    lines.append(json.loads(raw))
                except json.JSONDecodeError:
                    continue
        return lines


@pytest.fixture(scope="package")
def chaos(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosStack]:
    manifests = tmp_path_factory.mktemp("chaos-manifests")
    dag = layered_dag(CHAOS_SEED)
    write_manifest(dag, manifests, "chaos_dag", labels={CRASH_LABEL: "on"}, retry={"max_attempts": 3, "backoff_seconds": 1})
    for name, document in SMALL_MANIFESTS.items():
        (manifests / f"{name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    work_dir = REPO / ".devstack" / f"chaos-{os.getpid()}"
    crash_record = work_dir / "chaos-crashes.jsonl"
    topology = load_topology(synth_dir, "dev")
    policy = ChaosPolicy()
    options = LocalStackOptions(
        work_dir=work_dir,
        job_duration_s=0.05,
        manifests_dir=manifests,
        synth_dir=synth_dir,
        delivery_policy=policy,
        handlers_source=REPO / "devstack" / "chaos_main.py",
        push_backoff_s=(1.0, 2.0),  # the stack's 10..600 s would take minutes to exhaust 10 attempts
        extra_handler_env={
            **RECONCILE_ENV,
            "BATON_DEAD_LETTER_TOPIC": topology.dead_letter_topic,
            "CHAOS_CRASH_PROBABILITY": str(CRASH_PROBABILITY),
            "CHAOS_CRASH_LABEL": CRASH_LABEL,
            "CHAOS_SEED": str(CHAOS_SEED),
            "CHAOS_RECORD": str(crash_record),
            "BATON_POOLS": json.dumps(CHAOS_POOLS, sort_keys=True),
        },
    )
    with LocalStack.start(options) as stack:
        yield ChaosStack(stack, SpannerRunStore(stack.database(), pool_sizes=CHAOS_POOLS), policy, dag, crash_record, manifests)


@dataclass
class Scheduler:
    """Calls reconcile every `period_s` seconds on a thread, one call at a time, as Cloud Scheduler would."""

    stack: LocalStack
    period_s: float = RECONCILE_PERIOD_S
    reports: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Scheduler:
        self._thread = threading.Thread(target=self._loop, name="test-scheduler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=150)

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                response = requests.post(self.stack.functions["reconcile"].url, timeout=120)
                if response.status_code == 200:
                    self.reports.append(response.json())
                else:
                    self.failures.append(f"{response.status_code}: {response.text[:300]}")
            except requests.RequestException as exc:
                self.failures.append(repr(exc))
            self.durations.append(time.monotonic() - started)
            self._stop.wait(max(0.0, self.period_s - (time.monotonic() - started)))

    def total(self, key: str) -> int:
        return sum(int(report.get(key, 0)) for report in self.reports)


def wait_until(predicate: Any, timeout_s: float, interval_s: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())


# --- what BigQuery's audit log recorded about a run ------------------------------------------------


def _labels(entry: Mapping[str, Any]) -> dict[str, str]:
    metadata = entry["protoPayload"]["metadata"]
    change = metadata.get("jobChange") or metadata.get("jobInsertion") or {}
    return dict(change.get("job", {}).get("jobConfig", {}).get("labels", {}))


def _stamp(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class AuditRecord:
    """Per job of one run: when each BigQuery job was inserted and how each ended, from the audit entries."""

    inserted: dict[str, list[dt.datetime]] = field(default_factory=dict)
    succeeded: dict[str, list[dt.datetime]] = field(default_factory=dict)  # end times of DONE jobs without error
    failed: dict[str, list[str]] = field(default_factory=dict)  # error codes of DONE jobs with one
    attempts: dict[str, set[str]] = field(default_factory=dict)
    insert_time: dict[tuple[str, int], dt.datetime] = field(default_factory=dict)  # (job, attempt)
    end_time: dict[tuple[str, int], dt.datetime] = field(default_factory=dict)

    @classmethod
    def of(cls, stack: LocalStack, run_id: str) -> AuditRecord:
        record = cls()
        for entry in list(stack.bigquery.bridge.entries):
            labels = _labels(entry)
            if labels.get("baton_run") != run_id:
                continue
            key = labels["baton_job"]
            record.attempts.setdefault(key, set()).add(labels["baton_attempt"])
            metadata = entry["protoPayload"]["metadata"]
            job = (metadata.get("jobChange") or metadata.get("jobInsertion"))["job"]
            attempt = (key, int(labels["baton_attempt"]))
            if "jobInsertion" in metadata:
                record.inserted.setdefault(key, []).append(_stamp(job["jobStats"]["createTime"]))
                record.insert_time[attempt] = _stamp(job["jobStats"]["createTime"])
            elif metadata["jobChange"].get("after") == "DONE":
                record.end_time[attempt] = _stamp(job["jobStats"]["endTime"])
                error = job["jobStatus"].get("errorResult")
                if error:
                    record.failed.setdefault(key, []).append(str(error.get("code")))
                else:
                    record.succeeded.setdefault(key, []).append(_stamp(job["jobStats"]["endTime"]))
        return record

    def successes(self) -> Counter[str]:
        return Counter({key: len(ends) for key, ends in self.succeeded.items()})


def bigquery_jobs(stack: LocalStack, run_id: str) -> list[dict[str, Any]]:
    """The jobs the local BigQuery holds for one run, as its own job list shows them (state, labels, times)."""
    listed = requests.get(f"{stack.bigquery.endpoint}/_facade/jobs", timeout=10).json()["jobs"]
    return [job for job in listed if job["labels"].get("baton_run") == run_id]


def assert_each_job_once_in_order(stack: LocalStack, run_id: str, dag: Dag) -> AuditRecord:
    """Each manifest job has exactly one successful BigQuery job, and none was inserted before all its
    upstreams succeeded (BigQuery's own times, from the audit entries). Returns the audit record."""
    audit = AuditRecord.of(stack, run_id)
    assert audit.successes() == Counter(dict.fromkeys(dag.keys, 1))
    for key, upstreams in dag.needs.items():
        if upstreams:
            ready_at = max(min(audit.succeeded[up]) for up in upstreams)
            assert min(audit.inserted[key]) >= ready_at, f"{key} inserted before an upstream finished"
    return audit


def assert_nothing_in_flight(stack: LocalStack, run_id: str, jobs: list[JobRecord]) -> None:
    """A succeeded run leaves nothing behind: every job SUCCEEDED in Spanner, every BigQuery job DONE, and a
    last reconciler pass finds nothing to submit, heal, resubmit or repair."""
    assert {job.status for job in jobs} == {JobStatus.SUCCEEDED}
    assert [job["jobId"] for job in bigquery_jobs(stack, run_id) if job["state"] != "DONE"] == []
    final = stack.reconcile()
    assert (final["submitted"], final["healed"], final["resubmitted_lost"], final["repaired_runs"]) == (0, 0, 0, 0)
