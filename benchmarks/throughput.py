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
series runs a transaction shaped like a sibling's completion (4 point reads, one
at a time as the store makes them, then 3 row writes) without any of Baton's
code: the gap between it and the ceiling is what the event's reads cost on this
emulator, the gap between it and Baton is the handler's own work. A fourth has
the same writes and 2 reads: what merging the event's reads would buy.

The emulator runs one read-write transaction at a time and aborts the others;
it sends no retry delay, so the client waits 2-3 s before retrying. With several
workers every series loses time to such stalls (counted: transactions over 1 s),
which makes those rates noisy; one worker measures the work alone.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections.abc import Callable
from multiprocessing.context import SpawnContext
from pathlib import Path
from typing import Any

from benchmarks import shapes
from benchmarks.handler_harness import HandlerHarness, completion_entry, functions_app, push_body, spanner_database
from benchmarks.measures import Summary

WIDTH = 1_000
TARGET_SHARE = 0.5
CEILING_DATABASE = "bench-ceiling"
CEILING_DDL = "CREATE TABLE Counters (Id INT64 NOT NULL, Value INT64 NOT NULL) PRIMARY KEY (Id)"
ROWS_PER_WORKER = 8
CEILING_TX = ("tx", 1, 1)  # (reads, writes)
EVENT_SHAPED_TX = ("tx", 4, 3)  # what a sibling's completion reads and writes
TWO_READS_TX = ("tx", 2, 3)  # the same writes, were the event's reads merged into two round trips
STALL_S = 1.0  # longer than any transaction's work: it waited out the client's backoff after an ABORTED
_STOP = ("stop",)


def _worker(index: int, env: dict[str, str], log_path: str, tasks: Any, results: Any) -> None:
    """One handler instance: warm up (clients built, as after a cold start), then serve tasks until told to stop."""
    os.environ.update(env)
    with open(log_path, "w") as log, contextlib.redirect_stdout(log):
        from google.cloud import spanner

        client = functions_app("bigquery_job_completed").test_client()
        ceiling = spanner_database(env["BATON_PROJECT"], env["BATON_SPANNER_INSTANCE"], CEILING_DATABASE)
        point: Any = spanner.KeySet

        mine = [index * ROWS_PER_WORKER + k for k in range(ROWS_PER_WORKER)]

        def bump(transaction: Any, reads: int, writes: int) -> None:
            values = {}
            for key in mine[:reads]:  # one point read at a time, as the run store reads
                row = next(iter(transaction.read("Counters", ("Id", "Value"), point(keys=[[key]]))))
                values[key] = row[1]
            transaction.update("Counters", ("Id", "Value"), [[key, values.get(key, 0) + 1] for key in mine[:writes]])

        ceiling.run_in_transaction(bump, 1, 1)
        unknown = completion_entry(env["BATON_PROJECT"], env["BATON_ENV"], "0" * 32, "warm_up")
        client.post("/", data=push_body(unknown), content_type="application/json")
        results.put(("ready", index, 0.0, 0.0, 200, ""))
        while True:
            task = tasks.get()
            if task == _STOP:
                return
            start = time.monotonic()
            if task[0] == "tx":
                ceiling.run_in_transaction(bump, task[1], task[2])
                results.put(("tx", index, start, time.monotonic(), 200, ""))
            else:
                response = client.post("/", data=task[1], content_type="application/json")
                answer = response.get_json(silent=True) or {}
                results.put(("event", index, start, time.monotonic(), response.status_code, str(answer.get("verdict", ""))))


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

    def run(self, tasks: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        for task in tasks:
            self.tasks.put(task)
        return [self.results.get(timeout=600) for _ in tasks]

    def close(self) -> None:
        for _ in self.processes:
            self.tasks.put(_STOP)
        for process in self.processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()


def _rate(done: list[tuple[Any, ...]]) -> float:
    return len(done) / _span(done)


def _span(done: list[tuple[Any, ...]]) -> float:
    first: float = min(d[2] for d in done)
    last: float = max(d[3] for d in done)
    return last - first


def _series(done: list[tuple[Any, ...]], spans: list[list[tuple[Any, ...]]] | None = None) -> dict[str, Any]:
    """Rate over the wall time of the series (of each part, when it ran in parts), latency, and stalls."""
    seconds = [d[3] - d[2] for d in done]
    wall = sum(_span(part) for part in spans) if spans else _span(done)
    return {
        "count": len(done),
        "per_s": len(done) / wall,
        "ms": Summary.of([s * 1000 for s in seconds]).to_json(),
        "stalled": sum(1 for s in seconds if s > STALL_S),
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
    manifest = shapes.build(shapes.diamond(f"diamond-{width}", width))
    context = multiprocessing.get_context("spawn")
    log_dir.mkdir(parents=True, exist_ok=True)
    measured = []
    for workers in worker_counts:
        progress(f"throughput: writing a {width:,}-wide fan-out/fan-in run")
        plan = harness.create_run(store, manifest)
        run_id = plan.run.run_id
        progress("throughput: the fan-out event (releases and submits every sibling)")
        with harness.rows_read() as rows:
            fan_out_s, answer = harness.post(client, harness.completion(run_id, "root"))
        if len(answer.get("released", [])) != width or not harness.submitted(run_id, shapes.sibling_key(width - 1)):
            raise RuntimeError(f"the fan-out event should release {width} jobs: {str(answer)[:300]}")
        progress(f"throughput: starting {workers} handler worker process(es)")
        pool = _Pool(context, workers, dict(harness.env), log_dir)
        try:
            half = [CEILING_TX] * (width // 2)
            progress(f"throughput: ceiling, {len(half)} small read-write transactions")
            ceiling_before = pool.run(half)
            progress(f"throughput: fan-in, {width:,} sibling completions over {workers} worker(s)")
            events = [("event", harness.completion(run_id, shapes.sibling_key(i))) for i in range(width)]
            fan_in = pool.run(events)
            progress(f"throughput: ceiling again, {len(half)} transactions")
            ceiling_after = pool.run(half)
            progress(f"throughput: {len(half)} event-shaped transactions (4 reads, 3 writes), then {len(half)} with 2 reads")
            shaped = pool.run([EVENT_SHAPED_TX] * len(half))
            two_reads = pool.run([TWO_READS_TX] * len(half))
        finally:
            pool.close()
        failures = [e for e in fan_in if e[4] != 200 or e[5] != "recorded"]
        if failures:
            raise RuntimeError(f"{len(failures)} fan-in events failed, e.g. {failures[0]}")
        run = store.get_run(run_id)
        if run is None or run.succeeded_jobs != width + 1 or not harness.submitted(run_id, "sink"):
            raise RuntimeError(f"after the fan-in the sink should be submitted: {run}")
        ceiling = _series(ceiling_before + ceiling_after, spans=[ceiling_before, ceiling_after])
        baton = _series(fan_in)
        measured.append(
            {
                "workers": workers,
                "events": width,
                "baton": baton,
                "ceiling": {**ceiling, "before_per_s": _rate(ceiling_before), "after_per_s": _rate(ceiling_after)},
                "event_shaped": _series(shaped),
                "two_reads": _series(two_reads),
                "share": baton["per_s"] / ceiling["per_s"],
                "share_of_event_shaped": baton["per_s"] / _rate(shaped),
                "fan_out_event_s": fan_out_s,
                "fan_out_transactions_s": rows.seconds,
                "fan_out_rows_read": rows.total,
                "met": baton["per_s"] / ceiling["per_s"] >= TARGET_SHARE,
            }
        )
    return {"width": width, "target_share": TARGET_SHARE, "results": measured}
