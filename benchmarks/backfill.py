"""Backfill makespan: 30 dates of `elt_daily` through a pool of 4, in simulated time.

A backfill asks for one run per date; every job of the manifest takes a slot of
one pool of 4. Each job gets a seeded simulated duration (2-20 minutes, drawn
per date and job, so the same durations every time). The benchmark plays
BigQuery: whenever a job's duration is over, the completion handler gets the
LogEntry BigQuery would write, through functions-framework's app, and whatever
Baton submits in answer starts at that simulated instant. Nothing else drives
the backfill: runs start and queued jobs are released only by completions.

Measured: the makespan (simulated time from the backfill's start to its last
job's end) and the most jobs of the pool ever running at once. Ideal: the
least makespan any schedule could reach with that pool and those durations,
max(total job time / pool size, the longest chain of one date), a bound no
scheduler can beat, so the ratio to it is an upper bound on the distance to
the best schedule.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from baton.domain.naming import LABEL_JOB, LABEL_RUN
from benchmarks.compute import JOB_SECONDS, done_entry
from benchmarks.handler_harness import HandlerHarness, push_body

MANIFEST = "elt_daily"
POOL = "backfill_bench"
POOL_SIZE = 4
FIRST_DATE, DATES = "2026-01-01", 30
MAX_ACTIVE_RUNS = 8  # enough runs in flight that the pool always has a job waiting, until the last dates
TARGET_RATIO = 1.2


def duration_s(date: str, job_key: str, seed: int = 7) -> float:
    """A job's simulated duration: seeded by date and job, so every run of the benchmark sees the same ones."""
    digest = hashlib.sha256(f"{seed}:{date}:{job_key}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    low, high = JOB_SECONDS
    return low + fraction * (high - low)


def longest_chain_s(needs: Mapping[str, Sequence[str]], durations: Mapping[str, float]) -> float:
    """The critical path of one run: the longest sum of durations along a dependency chain."""
    finish: dict[str, float] = {}

    def finish_of(key: str) -> float:
        if key not in finish:
            finish[key] = durations[key] + max((finish_of(up) for up in needs[key]), default=0.0)
        return finish[key]

    return max(finish_of(key) for key in needs)


def ideal_makespan_s(needs: Mapping[str, Sequence[str]], per_date: Mapping[str, Mapping[str, float]], pool: int) -> float:
    """The least makespan any schedule can reach: the pool busy all the time, or one date's longest chain."""
    total = sum(sum(durations.values()) for durations in per_date.values())
    return max(total / pool, max(longest_chain_s(needs, durations) for durations in per_date.values()))


def most_at_once(intervals: Sequence[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an end at t comes before a start at t: the slot was handed on)."""
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals], key=lambda p: (p[0], p[1]))
    running = most = 0
    for _, step in points:
        running += step
        most = max(most, running)
    return most


def copy_manifest(source: Path, target: Path) -> dict[str, list[str]]:
    """The example manifest minus data checks (their results need a real query engine), every job in the pool.

    Returns each job's upstreams, for the ideal makespan.
    """
    data = yaml.safe_load((source / f"{MANIFEST}.yaml").read_text(encoding="utf-8"))
    data["pool"] = POOL
    for job in data["jobs"]:
        job.pop("checks", None)
    (target / f"{MANIFEST}.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    shutil.copytree(source / "sql", target / "sql", dirs_exist_ok=True)
    return {job["key"]: list(job.get("needs", [])) for job in data["jobs"]}


def dates(first: str, count: int) -> list[str]:
    start = dt.date.fromisoformat(first)
    return [(start + dt.timedelta(days=i)).isoformat() for i in range(count)]


def run(harness: HandlerHarness, manifests_source: Path, progress: Callable[[str], None], count: int = DATES) -> dict[str, Any]:
    needs = copy_manifest(manifests_source, harness.manifests_dir)
    harness.set_pools({POOL: POOL_SIZE})
    store = harness.use_database("bench-backfill")
    start_client = harness.client("start_manifest")
    completed_client = harness.client("bigquery_job_completed")
    known = {job["jobId"] for job in harness.facade_jobs()}
    all_dates = dates(FIRST_DATE, count)

    progress(f"backfill: {count} dates of {MANIFEST}, pool of {POOL_SIZE}, {MAX_ACTIVE_RUNS} runs at most, simulated time")
    wall_started = time.perf_counter()
    body = {
        "manifest": MANIFEST,
        "backfill": {"from": all_dates[0], "to": all_dates[-1], "max_active_runs": MAX_ACTIVE_RUNS},
    }
    response = start_client.post("/", json=body)
    if response.status_code != 200:
        raise RuntimeError(f"start_manifest answered {response.status_code}: {response.get_json()}")
    answer = response.get_json()
    backfill_id = answer.get("backfill_id")

    run_dates: dict[str, str] = {}
    queue: list[tuple[float, str, dict[str, Any]]] = []
    intervals: list[tuple[float, float]] = []
    per_date: dict[str, dict[str, float]] = {}
    run_spans: dict[str, tuple[float, float]] = {}  # run -> (its first job's start, its last job's end)

    def date_of(run_id: str) -> str:
        if run_id not in run_dates:
            record = store.get_run(run_id)
            if record is None:
                raise RuntimeError(f"backfill: BigQuery holds a job of run {run_id}, which Spanner does not know")
            run_dates[run_id] = str(record.params["run_date"].value)
        return run_dates[run_id]

    def enqueue(now: float) -> None:
        for job in harness.facade_jobs():
            if job["jobId"] in known:
                continue
            known.add(job["jobId"])
            run_id, key = job["labels"][LABEL_RUN], job["labels"][LABEL_JOB]
            date = date_of(run_id)
            seconds = duration_s(date, key)
            per_date.setdefault(date, {})[key] = seconds
            intervals.append((now, now + seconds))
            first, last = run_spans.get(run_id, (now, now))
            run_spans[run_id] = (min(first, now), max(last, now + seconds))
            heapq.heappush(queue, (now + seconds, job["jobId"], job))

    enqueue(0.0)
    makespan, events = 0.0, 0
    while queue:
        makespan, _, job = heapq.heappop(queue)
        _, reply = harness.post(completed_client, push_body(done_entry(harness, job)))
        if reply.get("verdict") != "recorded":
            raise RuntimeError(f"backfill: completion of {job['jobId']} not recorded: {reply}")
        events += 1
        enqueue(makespan)
        if events % 50 == 0:
            progress(f"backfill: {events} jobs done, simulated {makespan / 3600:.1f} h")
    wall_s = time.perf_counter() - wall_started

    statuses = {run_id: str(getattr(store.get_run(run_id), "status", None)) for run_id in run_dates}
    succeeded = sorted(run_dates[r] for r, status in statuses.items() if status == "SUCCEEDED")
    if succeeded != all_dates:
        missing = sorted(set(all_dates) - set(succeeded))
        raise RuntimeError(f"backfill: {len(succeeded)} of {count} dates SUCCEEDED; not: {missing[:5]} ({statuses})")
    if any(len(durations) != len(needs) for durations in per_date.values()):
        raise RuntimeError("backfill: some date did not run every job once")

    ideal = ideal_makespan_s(needs, per_date, POOL_SIZE)
    most = most_at_once(intervals)
    ratio = makespan / ideal
    return {
        "manifest": MANIFEST,
        "backfill_id": backfill_id,
        "dates": count,
        "jobs": len(intervals),
        "pool_size": POOL_SIZE,
        "max_active_runs": MAX_ACTIVE_RUNS,
        "job_seconds_total": sum(sum(d.values()) for d in per_date.values()),
        "makespan_s": makespan,
        "ideal_makespan_s": ideal,
        "ratio": ratio,
        "most_jobs_at_once": most,
        "most_runs_with_jobs_at_once": most_at_once(list(run_spans.values())),
        "events": events,
        "wall_s": wall_s,
        "target_ratio": TARGET_RATIO,
        "met": ratio <= TARGET_RATIO and most <= POOL_SIZE,
    }
