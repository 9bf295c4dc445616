"""Throughput: completion events per second through several concurrent handler workers.

A 1,000-wide fan-out and fan-in (`root` -> 1,000 siblings -> `sink`). The root's
event releases and submits all 1,000 siblings (timed on its own: its cost follows
its out-degree). Then the 1,000 sibling completions go to W worker processes at
once, each running the completion handler through functions-framework's app, as
W function instances would. Every sibling's event writes the run row and the sink
row, so they contend on purpose: that is what a fan-in is.

The ceiling is the same W workers running the smallest useful read-write
transaction (read one row, write it back, each worker its own rows) on the same
emulator, half before the fan-in and half after, so drift hits both. A third
series runs a transaction shaped like a sibling's completion (one read of 3 rows,
as the store reads the job, the sink and the run's state row, then 4 row writes)
without any of Baton's code: the gap between it and the ceiling is what the
event's rows cost on this emulator, the gap between it and Baton is the handler's
own work.

The emulator runs one read-write transaction at a time and aborts the others;
it sends no retry delay, so the client waits 2-3 s before retrying. With several
workers every series loses time to such stalls (counted: transactions over 1 s),
which makes those rates noisy; one worker measures the work alone.
"""

from __future__ import annotations

import contextlib
import heapq
import multiprocessing
import os
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.context import SpawnContext
from pathlib import Path
from typing import Any

from benchmarks import shapes
from benchmarks.event_cost import siblings_submitted
from benchmarks.handler_harness import HandlerHarness, completion_entry, functions_app, push_body, spanner_database
from benchmarks.measures import Summary
from benchmarks.pubsub_player import SUCCESS, backoff_s, with_attempt
from devstack.topology import PushSubscription

WIDTH = 1_000
TARGET_SHARE = 0.5
CEILING_DATABASE = "bench-ceiling"
CEILING_DDL = "CREATE TABLE Counters (Id INT64 NOT NULL, Value INT64 NOT NULL) PRIMARY KEY (Id)"
ROWS_PER_WORKER = 8
CEILING_TX = ("tx", (1,), 1)  # (rows of each read, one read after another; rows written)
# A sibling's completion: its job, the sink and the run's state row in one read; the job, the sink, the Runs row
# and the state row written.
EVENT_SHAPED_TX = ("tx", (3,), 4)
STALL_S = 1.0  # longer than any transaction's work: it waited out the client's backoff after an ABORTED
_STOP = ("stop",)


def _worker(index: int, env: dict[str, str], log_path: str, tasks: Any, results: Any) -> None:
    """One handler instance: warm up (clients built, as after a cold start), then serve tasks until told to stop.

    Each result: (kind, worker, start, end, status, verdict, transaction attempts, transactions, task).
    """
    os.environ.update(env)
    with open(log_path, "w") as log, contextlib.redirect_stdout(log):
        from google.cloud import spanner

        from baton import bootstrap
        from baton.adapters.spanner_store import run_paced
        from baton.domain.timing import TimeBudget

        client = functions_app("bigquery_job_completed").test_client()
        ceiling = spanner_database(env["BATON_PROJECT"], env["BATON_SPANNER_INSTANCE"], CEILING_DATABASE)
        point: Any = spanner.KeySet

        mine = [index * ROWS_PER_WORKER + k for k in range(ROWS_PER_WORKER)]
        attempts = [0]

        def bump(transaction: Any, reads: tuple[int, ...], writes: int) -> None:
            attempts[0] += 1
            values = {}
            for rows in reads:  # one read after another, as the run store reads
                for key, value in transaction.read("Counters", ("Id", "Value"), point(keys=[[key] for key in mine[:rows]])):
                    values[key] = value
            transaction.update("Counters", ("Id", "Value"), [[key, values.get(key, 0) + 1] for key in mine[:writes]])

        def paced_bump(reads: tuple[int, ...], writes: int) -> None:
            """The baseline transaction, its aborted attempts paced exactly as the store paces Baton's."""
            run_paced(ceiling, lambda transaction: bump(transaction, reads, writes), TimeBudget().call_deadline_s)

        paced_bump((1,), 1)
        unknown = completion_entry(env["BATON_PROJECT"], env["BATON_ENV"], "0" * 32, "warm_up")
        client.post("/", data=push_body(unknown), content_type="application/json")
        store: Any = bootstrap.orchestrator().store  # the SpannerRunStore, whose counters say what aborted
        results.put(("ready", index, 0.0, 0.0, 200, "", 0, 0, None))
        while True:
            task = tasks.get()
            if task == _STOP:
                return
            start = time.monotonic()
            if task[0] == "tx":
                attempts[0] = 0
                paced_bump(task[1], task[2])
                results.put(("tx", index, start, time.monotonic(), 200, "", attempts[0], 1, task))
            else:
                tried, done = store.transaction_attempts, store.transactions
                response = client.post("/", data=task[1], content_type="application/json")
                answer = response.get_json(silent=True) or {}
                verdict = str(answer.get("verdict", ""))
                results.put(
                    (
                        "event",
                        index,
                        start,
                        time.monotonic(),
                        response.status_code,
                        verdict,
                        store.transaction_attempts - tried,
                        store.transactions - done,
                        task,
                    )
                )


class _Pool:
    def __init__(self, context: SpawnContext, workers: int, env: dict[str, str], log_dir: Path) -> None:
        self.tasks = context.Queue()
        self.results = context.Queue()
        self.processes = [
            context.Process(
                target=_worker, args=(i, env, str(log_dir / f"worker-{i}.log"), self.tasks, self.results), daemon=True
            )
            for i in range(workers)
        ]
        for process in self.processes:
            process.start()
        for _ in self.processes:
            self.results.get(timeout=120)

    def run(self, tasks: list[tuple[Any, ...]], policy: PushSubscription | None = None) -> _Outcome:
        """Run every task; an event refused (not 2xx) is redelivered after Pub/Sub's backoff, as its subscription would."""
        outcome = _Outcome()
        for task in tasks:
            self.tasks.put(task)
        waiting = len(tasks)
        later: list[tuple[float, int, tuple[Any, ...]]] = []  # (due, order, task): redeliveries, by due time
        while waiting:
            while later and later[0][0] <= time.monotonic():
                self.tasks.put(heapq.heappop(later)[2])
            try:
                result = self.results.get(timeout=max(0.0, later[0][0] - time.monotonic()) if later else 600.0)
            except queue.Empty:
                if later:
                    continue
                raise
            outcome.invocations.append(result)
            task, status = result[8], result[4]
            if result[0] == "event" and status not in SUCCESS:
                attempt = int(task[2])
                if policy is not None and attempt < policy.max_delivery_attempts:
                    outcome.redeliveries += 1
                    due = time.monotonic() + backoff_s(policy, attempt)
                    redelivery = ("event", with_attempt(task[1], attempt + 1), attempt + 1)
                    heapq.heappush(later, (due, len(outcome.invocations), redelivery))
                    continue
            outcome.done.append(result)
            waiting -= 1
        return outcome

    def close(self) -> None:
        for _ in self.processes:
            self.tasks.put(_STOP)
        for process in self.processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()


@dataclass
class _Outcome:
    """Tasks finished (the last delivery of each event), every invocation, and how many were redelivered."""

    done: list[tuple[Any, ...]] = field(default_factory=list)
    invocations: list[tuple[Any, ...]] = field(default_factory=list)
    redeliveries: int = 0


def _rate(outcome: _Outcome) -> float:
    return len(outcome.done) / _span(outcome.invocations)


def _span(invocations: list[tuple[Any, ...]]) -> float:
    """From the first dispatch to the last answer, redeliveries and their backoff included."""
    first: float = min(d[2] for d in invocations)
    last: float = max(d[3] for d in invocations)
    return last - first


def _series(outcome: _Outcome, parts: list[_Outcome] | None = None) -> dict[str, Any]:
    """Rate over the wall time of the series (of each part, when it ran in parts), latency, stalls and aborts."""
    invocations = outcome.invocations
    seconds = [d[3] - d[2] for d in invocations]
    wall = sum(_span(part.invocations) for part in parts) if parts else _span(invocations)
    attempts, committed = sum(d[6] for d in invocations), sum(d[7] for d in invocations)
    return {
        "count": len(outcome.done),
        "per_s": len(outcome.done) / wall,
        "ms": Summary.of([s * 1000 for s in seconds]).to_json(),
        "stalled": sum(1 for s in seconds if s > STALL_S),
        "invocations": len(invocations),
        "redeliveries": outcome.redeliveries,
        "transactions": committed,
        "aborted_attempts": attempts - committed,
    }


def _create_ceiling_database(harness: HandlerHarness, workers: int) -> None:
    database = spanner_database(harness.project, harness.env["BATON_SPANNER_INSTANCE"], CEILING_DATABASE, [CEILING_DDL])
    database.create().result(120)
    with database.batch() as batch:
        batch.insert("Counters", ("Id", "Value"), [[i, 0] for i in range(workers * ROWS_PER_WORKER)])


def run(
    harness: HandlerHarness, worker_counts: tuple[int, ...], log_dir: Path, progress: Callable[[str], None], width: int = WIDTH
) -> dict[str, Any]:
    store = harness.use_database("bench-throughput")
    _create_ceiling_database(harness, max(worker_counts))
    client = harness.client("bigquery_job_completed")
    policy = harness.stack.topology.push_subscription
    manifest = shapes.build(shapes.diamond(f"diamond-{width}", width))
    context = multiprocessing.get_context("spawn")
    log_dir.mkdir(parents=True, exist_ok=True)
    measured = []
    for workers in worker_counts:
        progress(f"throughput: writing a {width:,}-wide fan-out/fan-in run")
        plan = harness.create_run(store, manifest)
        run_id = plan.run.run_id
        progress("throughput: the fan-out event (releases every sibling; submit batches handed on by message)")
        with harness.rows_read() as rows:
            fan_out_s, answer = harness.post(client, harness.completion(run_id, "root"), "fan-out event")
        if len(answer.get("released", [])) != width or not harness.submitted(run_id, shapes.sibling_key(width - 1)):
            raise RuntimeError(f"the fan-out event should release {width} jobs: {str(answer)[:300]}")
        # The same number of sibling events spread over one run per worker, interleaved: no row is shared by
        # events in flight at once, so the difference to the fan-in is what the run and sink rows cost.
        per_run = max(1, width // workers)
        spread_manifest = shapes.build(shapes.fan_in(f"spread-{per_run + 1}", per_run + 1))
        spread_runs = [harness.create_run(store, spread_manifest, prepare=siblings_submitted) for _ in range(workers)]
        progress(f"throughput: starting {workers} handler worker process(es)")
        pool = _Pool(context, workers, dict(harness.env), log_dir)
        try:
            half = [CEILING_TX] * (width // 2)
            progress(f"throughput: ceiling, {len(half)} small read-write transactions")
            ceiling_before = pool.run(half)
            progress(f"throughput: fan-in, {width:,} sibling completions of one run over {workers} worker(s)")
            events = [("event", harness.completion(run_id, shapes.sibling_key(i)), 1) for i in range(width)]
            fan_in = pool.run(events, policy)
            progress(f"throughput: the same events spread over {workers} run(s), no shared row in flight")
            spread_events = [
                ("event", harness.completion(plan.run.run_id, shapes.sibling_key(i)), 1)
                for i in range(per_run)
                for plan in spread_runs
            ]
            spread = pool.run(spread_events, policy)
            progress(f"throughput: ceiling again, {len(half)} transactions")
            ceiling_after = pool.run(half)
            progress(f"throughput: {len(half)} transactions shaped like the event (1 read of 3 rows, 4 writes)")
            shaped = pool.run([EVENT_SHAPED_TX] * len(half))
        finally:
            pool.close()
        for outcome, what in ((fan_in, "fan-in"), (spread, "spread")):
            failures = [e for e in outcome.done if e[4] not in SUCCESS or e[5] != "recorded"]
            if failures:
                raise RuntimeError(f"{len(failures)} {what} events were not recorded, e.g. {failures[0][:8]}")
        run = store.get_run(run_id)
        if run is None or run.succeeded_jobs != width + 1 or not harness.submitted(run_id, "sink"):
            raise RuntimeError(f"after the fan-in the sink should be submitted: {run}")
        ceiling_all = _Outcome(ceiling_before.done + ceiling_after.done, ceiling_before.invocations + ceiling_after.invocations)
        ceiling = _series(ceiling_all, parts=[ceiling_before, ceiling_after])
        baton = _series(fan_in)
        measured.append(
            {
                "workers": workers,
                "events": width,
                "baton": baton,
                "spread": _series(spread),
                "ceiling": {**ceiling, "before_per_s": _rate(ceiling_before), "after_per_s": _rate(ceiling_after)},
                "event_shaped": _series(shaped),
                "share": baton["per_s"] / ceiling["per_s"],
                "share_of_event_shaped": baton["per_s"] / _rate(shaped),
                "fan_out_event_s": fan_out_s,
                "fan_out_transactions_s": rows.seconds,
                "fan_out_rows_read": rows.total,
                "met": baton["per_s"] / ceiling["per_s"] >= TARGET_SHARE,
            }
        )
    return {"width": width, "target_share": TARGET_SHARE, "results": measured, "deliveries": harness.deliveries()}
