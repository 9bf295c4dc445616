"""Scale: four 10,000-job runs through every wide path, at Spanner's real commit budget, end to end.

The shapes of tests/scale, ten times larger and with the real 80,000-mutation budget:

- **wide**: root -> 9,998 -> sink succeeds (a release of 9,998 dependents in bounded steps, submit batches);
- **fail**: the root fails, the whole DAG is skipped in bounded steps, the run ends FAILED;
- **cancel**: a running run (root done, 9,998 submitted) is cancelled: nothing is left running in BigQuery;
- **retry**: the failed run is retried and succeeds.

Everything goes through the handler harness: every completion and every continuation is
a push to the completion handler, delivered (and redelivered after a refusal) by the
Pub/Sub player; cancel and retry are the operator's use cases, and what they hand on is
pushed too. Each shape's wall time stands next to its floor, measured in the same run:
events x the Pub/Sub emulator's publish-to-push latency, plus jobs x the local BigQuery's
bare jobs.insert. The benchmark stops if a shape does not end as it should.

Also the cost of a fan-out event against its out-degree: the root's completion with every
continuation it causes, divided by its dependents (flat per dependent is the target).
"""

from __future__ import annotations

import secrets
import statistics
import time
from collections.abc import Callable
from typing import Any

from baton.domain.records import JobStatus, RunStatus
from benchmarks import shapes
from benchmarks.handler_harness import HandlerHarness
from benchmarks.hop_latency import push_floor
from benchmarks.pubsub_player import PubSubPlayer
from devstack.audit_bridge import JobErrorInfo

JOBS = 10_000
OUT_DEGREES = (10, 100, 1_000, 3_000)
# Fan-out events timed per out-degree below the widest, the median kept: one shot varied by 5-9 ms per dependent
# at 1,000 between runs on an idle machine, enough to flip the flatness criterion either way.
FAN_OUT_REPEATS = 3
FUNCTION_TIMEOUT_S = 120.0
# notFound is the one reason of its google.rpc code (5), so the handler decides from the audit entry alone: the
# benchmark's BigQuery never ran the root, and a jobs.get of it would go to no engine.
ROOT_FAILURE = JobErrorInfo(reason="notFound", message="Not found: Table baton-dev-project:landing.nope")


class ShapeFailed(RuntimeError):
    """A shape did not end as it should: `make bench` stops."""


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise ShapeFailed(what)


class _Shape:
    """One shape's clock, deliveries and largest commit."""

    def __init__(self, harness: HandlerHarness, name: str) -> None:
        self.harness = harness
        self.name = name
        self.player: PubSubPlayer = harness.player()
        self.events = 0
        self.store: Any = harness.handler_store()
        self.store.largest_commit = 0
        self.started = time.perf_counter()

    def event(self, body: bytes, what: str) -> dict[str, Any]:
        self.events += 1
        return self.player.deliver_all(body, what)

    def result(self, jobs_submitted: int, floor_push_s: float, floor_insert_s: float, **extra: Any) -> dict[str, Any]:
        wall = time.perf_counter() - self.started
        deliveries = self.player.log.to_json()
        floor = self.events * floor_push_s + jobs_submitted * floor_insert_s
        self.player.close()
        return {
            "shape": self.name,
            "wall_s": wall,
            "events": self.events,
            "jobs_submitted": jobs_submitted,
            "floor_s": floor,
            "ratio": wall / floor if floor else None,
            "largest_commit": self.store.largest_commit,
            **deliveries,
            **extra,
        }


def _complete_all(shape: _Shape, run_id: str, keys: list[str], attempt: int, progress: Callable[[str], None]) -> None:
    for index, key in enumerate(keys):
        shape.event(shape.harness.completion(run_id, key, attempt), f"{shape.name}: completion of {key}")
        if index and index % 2_000 == 0:
            progress(f"scale {shape.name}: {index:,}/{len(keys):,} completions")


def _submitted(harness: HandlerHarness, run_id: str, keys: list[str], attempt: int = 1) -> int:
    return sum(1 for key in keys if harness.submitted(run_id, key, attempt))


def _insert_floor_s(harness: HandlerHarness, count: int) -> float:
    """The local BigQuery's bare jobs.insert (a `SELECT 1` query job), median of `count`, through its own client."""
    client = harness.stack.bigquery_client()
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        client.query("SELECT 1", job_id=f"bench_insert_floor_{secrets.token_hex(8)}", job_retry=None)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def _fan_out_cost(harness: HandlerHarness, store: Any, progress: Callable[[str], None], below: int) -> list[dict[str, Any]]:
    """The root's event of root -> d -> sink, with every continuation it causes: cost per dependent against d
    (the median of FAN_OUT_REPEATS events, each of a run of its own)."""
    measured = []
    for degree in (d for d in OUT_DEGREES if d < below):
        walls, invocations, longest, largest = [], 0, 0.0, 0
        for _ in range(FAN_OUT_REPEATS):
            plan = harness.create_run(store, shapes.build(shapes.diamond(f"fan-out-{degree}", degree)))
            run_id = plan.run.run_id
            shape = _Shape(harness, f"fan-out {degree}")
            shape.event(harness.completion(run_id, "root"), f"fan-out {degree}")
            walls.append(time.perf_counter() - shape.started)
            middle = [shapes.sibling_key(i) for i in range(degree)]
            _expect(_submitted(harness, run_id, middle) == degree, f"fan-out {degree}: not every dependent was submitted")
            log = shape.player.log
            shape.player.close()
            invocations, longest = log.invocations, max(longest, log.longest_s)
            largest = max(largest, shape.store.largest_commit)
        wall = statistics.median(walls)
        measured.append(
            {
                "out_degree": degree,
                "wall_s": wall,
                "walls_s": walls,
                "ms_per_dependent": wall * 1000 / degree,
                "invocations": invocations,
                "longest_invocation_s": longest,
                "largest_commit": largest,
            }
        )
        progress(f"scale: fan-out of {degree:,}: {wall:.2f} s, {wall * 1000 / degree:.2f} ms per dependent")
    return measured


def run(harness: HandlerHarness, progress: Callable[[str], None], jobs: int = JOBS) -> dict[str, Any]:
    store = harness.use_database("bench-scale")
    width = jobs - 2
    middle = [shapes.sibling_key(i) for i in range(width)]
    manifest = shapes.build(shapes.diamond(f"scale-{jobs}", width))
    budget = harness.handler_store().mutation_budget
    progress(f"scale: floors (publish-to-push latency, bare jobs.insert); commit budget {budget:,} mutations")
    with push_floor(harness.stack) as sample:
        push_samples = sample(40)
    insert_s = _insert_floor_s(harness, 40)
    push_s = statistics.median(push_samples)
    shapes_measured: list[dict[str, Any]] = []

    # 1. root -> width -> sink succeeds.
    progress(f"scale wide: writing a {jobs:,}-job run")
    run_id = harness.create_run(store, manifest).run.run_id
    shape = _Shape(harness, "wide")
    shape.event(harness.completion(run_id, "root"), "wide: the root's completion (releases every dependent)")
    root_s = time.perf_counter() - shape.started
    root_log = shape.player.log
    widest = {
        "out_degree": width,
        "wall_s": root_s,
        "ms_per_dependent": root_s * 1000 / width,
        "invocations": root_log.invocations,
        "longest_invocation_s": root_log.longest_s,
        "largest_commit": shape.store.largest_commit,
    }
    _expect(_submitted(harness, run_id, middle) == width, "wide: not every released job was submitted")
    progress(f"scale wide: {width:,} released and submitted; completing them")
    _complete_all(shape, run_id, [*middle, "sink"], 1, progress)
    run = store.get_run(run_id)
    _expect(run is not None and run.status == RunStatus.SUCCEEDED and run.succeeded_jobs == jobs, f"wide: ended as {run}")
    shapes_measured.append(shape.result(jobs, push_s, insert_s, status=str(run.status) if run else None))

    # 2. the root fails: everything downstream is skipped, the run FAILED.
    progress(f"scale fail: writing a {jobs:,}-job run; its root fails")
    failed_id = harness.create_run(store, manifest).run.run_id
    shape = _Shape(harness, "fail")
    shape.event(harness.completion(failed_id, "root", error=ROOT_FAILURE), "fail: the root's failure")
    run = store.get_run(failed_id)
    _expect(
        run is not None and (run.status, run.failed_jobs, run.skipped_jobs, run.open_jobs) == (RunStatus.FAILED, 1, jobs - 1, 0),
        f"fail: ended as {run}",
    )
    _expect(_submitted(harness, failed_id, middle[:50]) == 0, "fail: a job behind the failure was submitted")
    shapes_measured.append(shape.result(0, push_s, insert_s, status=str(run.status) if run else None))

    # 3. cancel a running run: root done, every dependent submitted and running.
    progress(f"scale cancel: writing a {jobs:,}-job run and running its {width:,} dependents")
    cancel_id = harness.create_run(store, manifest).run.run_id
    harness.player().deliver_all(harness.completion(cancel_id, "root"), "cancel: the root's completion")
    _expect(_submitted(harness, cancel_id, middle) == width, "cancel: not every released job was submitted")
    shape = _Shape(harness, "cancel")
    cancelled = harness.orchestrator().cancel(cancel_id)
    shape.player.drain()
    running = [
        key
        for key in middle
        if harness.facade.job_state(harness.project, _job_id(harness, cancel_id, key)) in ("PENDING", "RUNNING")
    ]
    run = store.get_run(cancel_id)
    _expect(
        run is not None and (run.status, run.open_jobs, run.cancelled_jobs) == (RunStatus.CANCELLED, 0, width + 1),
        f"cancel: ended as {run} (the use case answered {cancelled})",
    )
    _expect(not running, f"cancel: {len(running)} job(s) left running in BigQuery, e.g. {running[:3]}")
    shapes_measured.append(shape.result(0, push_s, insert_s, status=str(run.status) if run else None))

    # 4. retry the failed run: it succeeds.
    progress("scale retry: retrying the failed run")
    shape = _Shape(harness, "retry")
    harness.orchestrator().retry(failed_id)
    shape.player.drain()
    _expect(harness.submitted(failed_id, "root", 2), "retry: the root's second attempt was not submitted")
    shape.event(harness.completion(failed_id, "root", 2), "retry: the root's completion")
    _expect(_submitted(harness, failed_id, middle, 2) == width, "retry: not every released job was submitted")
    _complete_all(shape, failed_id, [*middle, "sink"], 2, progress)
    run = store.get_run(failed_id)
    jobs_after = store.list_jobs(failed_id)
    _expect(
        run is not None
        and run.status == RunStatus.SUCCEEDED
        and all(job.status == JobStatus.SUCCEEDED for job in jobs_after)
        and len(jobs_after) == jobs,
        f"retry: ended as {run}",
    )
    shapes_measured.append(shape.result(jobs, push_s, insert_s, status=str(run.status) if run else None))
    for measured in shapes_measured:
        progress(
            f"scale {measured['shape']}: {measured['wall_s']:.1f} s against a floor of {measured['floor_s']:.1f} s, "
            f"largest commit {measured['largest_commit']:,}, {measured['invocations']:,} invocations, "
            f"longest {measured['longest_invocation_s']:.2f} s, {measured['redeliveries']} redelivered"
        )
    progress("scale: fan-out cost against out-degree")
    fan_out = [*_fan_out_cost(harness, store, progress, width), widest]
    return {
        "jobs": jobs,
        "mutation_budget": budget,
        "floor_push_ms": push_s * 1000,
        "floor_insert_ms": insert_s * 1000,
        "function_timeout_s": FUNCTION_TIMEOUT_S,
        "shapes": shapes_measured,
        "fan_out": fan_out,
        "largest_commit": max(m["largest_commit"] for m in [*shapes_measured, *fan_out]),
    }


def _job_id(harness: HandlerHarness, run_id: str, job_key: str) -> str:
    from baton.domain.naming import bigquery_job_id

    return bigquery_job_id(harness.environment, run_id, job_key, 1)
