"""Compute per run: function-seconds Baton spends on a run, next to a polling orchestrator's.

The example manifest (`elt_daily`) runs with a simulated duration per job, T
seconds in all. The run is driven in simulated time: whenever a job's duration is
over, the handler gets the LogEntry BigQuery would write, through functions-
framework's app, and its wall time is measured. Time between events costs Baton
nothing, so simulated hours take real milliseconds, and what is added up is
exactly the handler work the run causes:

  start_manifest + every completion event + the reconciler's share
  (one invocation every `interval` while the run lasts, and its BigQuery
  lookups at the ages `due_for_check` picks, all charged to this one run).

The polling orchestrator checks each running job every 30 s with jobs.get
(timed against the same local BigQuery). Three ways to pay for it are shown:
its checks alone (busy time, the least any poller can spend); one invocation
every 30 s while the run lasts, billed per invocation in 100 ms units as Cloud
Functions do; and a worker that waits on each running job, billed while it waits.
"""

from __future__ import annotations

import datetime as dt
import heapq
import math
import random
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from baton.domain.timing import ReconcilePolicy, due_for_check
from benchmarks.handler_harness import HandlerHarness, push_body
from benchmarks.measures import Summary
from devstack.audit_bridge import AuditJob, job_change_entry

MANIFEST = "elt_daily"
PARAMS = {"run_date": "2026-01-15"}
POLL_INTERVAL_S = 30.0
BILLING_UNIT_S = 0.1  # Cloud Functions round each invocation's billed time up to 100 ms
JOB_SECONDS = (120, 1200)  # each job's simulated duration is drawn from this range (seeded)
LOOKUPS = 30


def billed(seconds: float) -> float:
    return math.ceil(seconds / BILLING_UNIT_S) * BILLING_UNIT_S


def reconciler_lookups(duration_s: float, policy: ReconcilePolicy, phases: int = 10) -> float:
    """BigQuery lookups the reconciler makes for one job that runs `duration_s`, averaged over pass phases."""
    interval = policy.interval.total_seconds()
    total = 0
    for phase in range(phases):
        age = interval * phase / phases
        while age < duration_s:
            if due_for_check(dt.timedelta(seconds=age), policy):
                total += 1
            age += interval
    return total / phases


def copy_manifest(source: Path, target: Path) -> None:
    """The example manifest and its SQL, minus data checks: their results need a real query engine."""
    data = yaml.safe_load((source / f"{MANIFEST}.yaml").read_text(encoding="utf-8"))
    for job in data["jobs"]:
        job.pop("checks", None)
    (target / f"{MANIFEST}.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    shutil.copytree(source / "sql", target / "sql", dirs_exist_ok=True)


def _facade_jobs(harness: HandlerHarness, run_id: str) -> list[dict[str, Any]]:
    return [job for job in harness.facade_jobs() if job["labels"].get("baton_run") == run_id]


def done_entry(harness: HandlerHarness, job: Mapping[str, Any]) -> dict[str, Any]:
    """BigQuery's LogEntry for this job succeeding, from the job as the façade holds it (labels and all)."""
    now = dt.datetime.now(dt.UTC)
    audit = AuditJob(
        project=job["projectId"],
        job_id=job["jobId"],
        location=job["location"],
        query="SELECT 1",
        labels=job["labels"],
        create_time=now - dt.timedelta(seconds=1),
        start_time=now - dt.timedelta(seconds=1),
        end_time=now,
        total_slot_ms=1000,
        total_processed_bytes=10_000_000,
        total_billed_bytes=10_485_760,
        output_row_count=100,
        cache_hit=False,
    )
    return job_change_entry(audit, "RUNNING", "DONE")


def run(harness: HandlerHarness, manifests_source: Path, progress: Callable[[str], None], seed: int = 7) -> dict[str, Any]:
    copy_manifest(manifests_source, harness.manifests_dir)
    store = harness.use_database("bench-compute")
    start_client = harness.client("start_manifest")
    completed_client = harness.client("bigquery_job_completed")
    reconcile_client = harness.client("reconcile")
    policy = harness.reconcile_policy()
    rng = random.Random(seed)

    progress(f"compute: {MANIFEST} in simulated time")
    started = time.perf_counter()
    response = start_client.post("/", json={"manifest": MANIFEST, "params": PARAMS})
    start_s = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"start_manifest answered {response.status_code}: {response.get_json()}")
    run_id = response.get_json()["run_id"]

    durations: dict[str, float] = {}
    queue: list[tuple[float, str, dict[str, Any]]] = []
    seen: set[str] = set()

    def enqueue(now: float) -> None:
        for job in _facade_jobs(harness, run_id):
            if job["jobId"] in seen:
                continue
            seen.add(job["jobId"])
            duration = rng.uniform(*JOB_SECONDS)
            durations[job["jobId"]] = duration
            heapq.heappush(queue, (now + duration, job["jobId"], job))

    enqueue(0.0)
    event_s: list[float] = []
    reconcile_s: list[float] = []
    makespan = 0.0
    while queue:
        makespan, _, job = heapq.heappop(queue)
        seconds, answer = harness.post(completed_client, push_body(done_entry(harness, job)))
        if answer.get("verdict") != "recorded":
            raise RuntimeError(f"compute: completion of {job['jobId']} not recorded: {answer}")
        event_s.append(seconds)
        enqueue(makespan)
        # What one reconciler pass costs while this run is in flight (timed, not counted as an event).
        started = time.perf_counter()
        reconciled = reconcile_client.post("/")
        reconcile_s.append(time.perf_counter() - started)
        if reconciled.status_code != 200:
            raise RuntimeError(f"reconcile answered {reconciled.status_code}: {reconciled.get_json()}")

    final = store.get_run(run_id)
    if final is None or str(final.status) != "SUCCEEDED":
        raise RuntimeError(f"compute: the run should have succeeded: {final}")

    lookup_s = _time_lookups(harness, next(iter(durations)))
    total_job_s = sum(durations.values())
    reconcile_p50 = Summary.of(reconcile_s).p50
    lookup_p50 = Summary.of(lookup_s).p50
    passes = math.ceil(makespan / policy.interval.total_seconds())
    lookups = sum(reconciler_lookups(d, policy) for d in durations.values())
    reconciler_s = passes * reconcile_p50 + lookups * lookup_p50
    baton_busy = start_s + sum(event_s) + reconciler_s
    baton_billed = billed(start_s) + sum(billed(s) for s in event_s) + passes * billed(reconciler_s / passes)
    checks = sum(max(1, math.ceil(d / POLL_INTERVAL_S)) for d in durations.values())
    poll_invocations = math.ceil(makespan / POLL_INTERVAL_S)
    running_at_once = checks / poll_invocations
    polling_busy = checks * lookup_p50
    polling_billed = poll_invocations * billed(running_at_once * lookup_p50)
    polling_waiting = total_job_s
    return {
        "manifest": MANIFEST,
        "jobs": len(durations),
        "job_seconds_total": total_job_s,
        "makespan_s": makespan,
        "baton": {
            "busy_s": baton_busy,
            "billed_s": baton_billed,
            "start_s": start_s,
            "events": len(event_s),
            "event_ms": Summary.of(event_s).scaled(1000).to_json(),
            "reconciler_passes": passes,
            "reconcile_ms_p50": reconcile_p50 * 1000,
            "reconciler_lookups": lookups,
            "reconciler_s": reconciler_s,
        },
        "polling": {
            "interval_s": POLL_INTERVAL_S,
            "checks": checks,
            "invocations": poll_invocations,
            "jobs_get_ms_p50": lookup_p50 * 1000,
            "busy_s": polling_busy,
            "billed_s": polling_billed,
            "waiting_s": polling_waiting,
        },
        "billing_unit_s": BILLING_UNIT_S,
    }


def _time_lookups(harness: HandlerHarness, job_id: str) -> list[float]:
    """jobs.get of one job, as a poller (or the reconciler) calls it, through Baton's own BigQuery adapter."""
    submitter = harness.handler_submitter()
    times = []
    for _ in range(LOOKUPS):
        started = time.perf_counter()
        remote = submitter.lookup(job_id)
        times.append(time.perf_counter() - started)
        if remote is None:
            raise RuntimeError(f"jobs.get found no job {job_id}")
    return times
