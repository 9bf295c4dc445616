"""Cost per completion event against manifest size: handler time and Spanner rows read.

Two shapes, each at 10, 100, 1,000 and 10,000 jobs:

- chain: completing j(i) releases j(i+1), which the handler submits (jobs.insert)
  and marks SUBMITTED: two transactions and one BigQuery call per event;
- wide: n-1 sibling jobs feeding one sink; completing a sibling records it and
  decrements the sink's count, releasing nothing (one transaction).

Events never finish a run (no run-finished publish) and never release a wide
fan-out: that event's cost follows its out-degree by design and is measured by
the throughput benchmark. Sizes are interleaved round by round, so machine noise
lands on every size alike.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from baton.domain.records import JobStatus, NewRun
from benchmarks import shapes
from benchmarks.handler_harness import HandlerHarness
from benchmarks.measures import Summary, ratio

SIZES = (10, 100, 1_000, 10_000)
SHAPES = ("chain", "wide")
TARGET_RATIO = 1.5


@dataclass
class _Config:
    shape: str
    jobs: int
    events: list[tuple[str, str]]  # (run_id, job_key) to complete, in order
    seconds: list[float] = dataclasses.field(default_factory=list)
    rows: list[int] = dataclasses.field(default_factory=list)
    transactions: list[int] = dataclasses.field(default_factory=list)
    transaction_seconds: list[float] = dataclasses.field(default_factory=list)


def siblings_submitted(plan: NewRun) -> NewRun:
    """The fan-in's siblings as BigQuery is running them: SUBMITTED, as their completion finds them."""
    now = dt.datetime.now(dt.UTC)
    jobs = [
        dataclasses.replace(j, status=JobStatus.SUBMITTED, submitted_at=now) if j.status == JobStatus.READY else j
        for j in plan.jobs
    ]
    return dataclasses.replace(plan, jobs=jobs)


def _usable_events(shape: str, jobs: int) -> int:
    """Events per run that neither finish the run nor release a fan-out."""
    return jobs - 1 if shape == "chain" else jobs - 2


def _keys(shape: str, count: int) -> list[str]:
    make = shapes.chain_key if shape == "chain" else shapes.sibling_key
    return [make(i) for i in range(count)]


def run(harness: HandlerHarness, events: int, progress: Callable[[str], None], sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
    store = harness.use_database("bench-events")
    client = harness.client("bigquery_job_completed")
    configs: list[_Config] = []
    for shape in SHAPES:
        for size in sizes:
            per_run = _usable_events(shape, size)
            runs = math.ceil(events / per_run)
            progress(f"cost per event: writing {runs} {shape} run(s) of {size:,} jobs")
            data = shapes.chain(f"chain-{size}", size) if shape == "chain" else shapes.fan_in(f"wide-{size}", size)
            manifest = shapes.build(data)
            todo: list[tuple[str, str]] = []
            for _ in range(runs):
                plan = harness.create_run(store, manifest, prepare=None if shape == "chain" else siblings_submitted)
                todo += [(plan.run.run_id, key) for key in _keys(shape, per_run)]
            configs.append(_Config(shape, size, todo[:events]))

    progress("cost per event: warming up the in-process handler")
    warm = harness.create_run(store, shapes.build(shapes.chain("warm-up", 6)))
    for key in _keys("chain", 5):
        harness.post(client, harness.completion(warm.run.run_id, key))

    progress(f"cost per event: {events} events x {len(configs)} configurations, interleaved")
    for index in range(events):
        rotated = configs[index % len(configs) :] + configs[: index % len(configs)]
        for config in rotated:
            run_id, key = config.events[index]
            with harness.rows_read() as rows:
                seconds, answer = harness.post(client, harness.completion(run_id, key))
            _check(harness, config, run_id, key, answer)
            config.seconds.append(seconds)
            config.rows.append(rows.total)
            config.transactions.append(rows.transactions)
            config.transaction_seconds.append(sum(rows.seconds))

    results: list[dict[str, Any]] = []
    for config in configs:
        results.append(
            {
                "shape": config.shape,
                "jobs": config.jobs,
                "handler_ms": Summary.of(config.seconds).scaled(1000).to_json(),
                "rows_read": Summary.of([float(r) for r in config.rows]).to_json(),
                "transactions": Summary.of([float(t) for t in config.transactions]).to_json(),
                "in_transactions_ms": Summary.of(config.transaction_seconds).scaled(1000).to_json(),
            }
        )
    verdicts = {}
    for shape in SHAPES:
        by_size = {r["jobs"]: r for r in results if r["shape"] == shape}
        small, large = by_size[min(sizes)], by_size[max(sizes)]
        value = ratio(large["handler_ms"]["p50"], small["handler_ms"]["p50"])
        verdicts[shape] = {
            "small_jobs": min(sizes),
            "large_jobs": max(sizes),
            "small_p50_ms": small["handler_ms"]["p50"],
            "large_p50_ms": large["handler_ms"]["p50"],
            "ratio": value,
            "rows_small": small["rows_read"]["p50"],
            "rows_large": large["rows_read"]["p50"],
            "met": value <= TARGET_RATIO,
        }
    return {"events_per_size": events, "results": results, "targets": verdicts, "target_ratio": TARGET_RATIO}


def _check(harness: HandlerHarness, config: _Config, run_id: str, key: str, answer: dict[str, Any]) -> None:
    """Each event must have done its work, or the timing means nothing."""
    if answer.get("verdict") != "recorded":
        raise RuntimeError(f"{config.shape}-{config.jobs}: event for {key} was not recorded: {answer}")
    released = answer.get("released", [])
    if config.shape == "chain":
        following = shapes.chain_key(int(key[1:]) + 1)
        if released != [following] or not harness.submitted(run_id, following):
            raise RuntimeError(f"chain-{config.jobs}: completing {key} should submit {following}, got {answer}")
    elif released:
        raise RuntimeError(f"wide-{config.jobs}: a sibling's event released {released}")
