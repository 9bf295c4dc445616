"""Hop overhead in the local stack, next to the Pub/Sub emulator's own publish-to-push latency.

A hop: the audit-log bridge publishes job i's completion LogEntry to the
completion topic; the emulator pushes it to `bigquery_job_completed` (under
functions-framework, as deployed); the handler records it in Spanner and calls
jobs.insert for job i+1. Its delay runs from the publish call to the façade
receiving that jobs.insert. The clock is this process's: the bridge and the
façade both run here.

The floor: the same kind of LogEntry, published by the same publisher class to
a topic of its own whose push subscription (same delivery policy) points at a
bare HTTP receiver in this process, from the publish call to the push arriving.

Hops come from chain runs of 51 jobs (50 hops each); floor samples are taken in
blocks between them, so both see the same machine.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from baton.adapters.spanner_store import SpannerRunStore
from baton.domain.naming import bigquery_job_id
from benchmarks import shapes
from benchmarks.handler_harness import completion_entry
from benchmarks.measures import Summary, ratio
from devstack.audit_bridge import PubSubPublisher, entry_job_id
from devstack.pubsub_admin import PushSubscriptionSpec, admin_clients, ensure_push_subscription, ensure_topic
from devstack.stack import LocalStack

TARGET_RATIO = 1.5
HOPS_PER_RUN = 50
FLOOR_TOPIC = "bench-floor"


def chain_manifest(jobs: int = HOPS_PER_RUN + 1) -> dict[str, Any]:
    return shapes.chain(f"hop-chain-{jobs}", jobs)


class _Receiver:
    """A bare push endpoint: notes when each message (by the LogEntry's insertId) arrives, answers 204."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                arrived = time.time()
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                entry = json.loads(base64.b64decode(body["message"]["data"]))
                self.send_response(204)
                self.end_headers()
                with receiver._cond:
                    receiver.arrived[entry["insertId"]] = arrived
                    receiver._cond.notify_all()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="bench-floor-receiver", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/"

    def wait(self, insert_id: str, timeout_s: float = 30.0) -> float:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while insert_id not in self.arrived:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"the floor message {insert_id} was not pushed within {timeout_s} s")
                self._cond.wait(remaining)
            return self.arrived[insert_id]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _PublishClock:
    """Wraps the bridge's publish: when each job's completion entry was handed to Pub/Sub, and when it was acked."""

    def __init__(self, publish: Callable[[Mapping[str, Any]], None]) -> None:
        self._publish = publish
        self.started: dict[str, float] = {}
        self.acked: dict[str, float] = {}

    def __call__(self, entry: Mapping[str, Any]) -> None:
        job_id = entry_job_id(entry) or ""
        started = time.time()
        self._publish(entry)
        self.started.setdefault(job_id, started)
        self.acked.setdefault(job_id, time.time())


def _insert_times(stack: LocalStack) -> dict[str, float]:
    """When the façade took each job's jobs.insert: the timestamp of the insertion audit entry it wrote then."""
    times = {}
    for entry in list(stack.bigquery.bridge.entries):
        if "jobInsertion" in entry["protoPayload"]["metadata"]:
            stamp = dt.datetime.strptime(entry["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
            times[entry_job_id(entry) or ""] = stamp.timestamp()
    return times


def _wait_for(condition: Callable[[], bool], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout_s} s")
        time.sleep(0.05)


def _chain_run(
    stack: LocalStack, store: SpannerRunStore, clock: _PublishClock, name: str, jobs: int
) -> list[tuple[float, float]]:
    """Run one chain through the local stack; (hop seconds, publish seconds) for each of its hops."""
    run_id = stack.start_run(name, {})["run_id"]
    environment = stack.settings["BATON_ENV"]
    ids = [bigquery_job_id(environment, run_id, shapes.chain_key(i), 1) for i in range(jobs)]
    _wait_for(lambda: ids[-1] in clock.acked, f"the chain run {run_id} did not finish", timeout_s=30 + jobs)

    def finished() -> bool:
        run = store.get_run(run_id)
        return run is not None and run.status.terminal

    _wait_for(finished, f"the chain run {run_id} did not end", timeout_s=30)
    final = store.get_run(run_id)
    if final is None or str(final.status) != "SUCCEEDED" or final.succeeded_jobs != jobs:
        raise RuntimeError(f"the chain run should have succeeded with {jobs} jobs: {final}")
    inserted = _insert_times(stack)
    return [(inserted[ids[i + 1]] - clock.started[ids[i]], clock.acked[ids[i]] - clock.started[ids[i]]) for i in range(jobs - 1)]


def _floor_samples(publisher: PubSubPublisher, receiver: _Receiver, project: str, count: int) -> list[tuple[float, float]]:
    samples = []
    for _ in range(count):
        entry = completion_entry(project, "bench", secrets.token_hex(16), "floor")
        insert_id = entry["insertId"] = secrets.token_hex(8)
        started = time.time()
        publisher(entry)
        acked = time.time()
        samples.append((receiver.wait(insert_id) - started, acked - started))
        time.sleep(0.02)  # the hop's next publish waits for a job too; don't measure a burst
    return samples


@contextlib.contextmanager
def push_floor(stack: LocalStack) -> Iterator[Callable[[int], list[float]]]:
    """A probe of the emulator's publish-to-push latency: a topic of its own with the stack's push policy, pushing
    to a bare receiver. Yields `sample(count) -> seconds per message`."""
    project = stack.topology.project
    topic = f"{FLOOR_TOPIC}-{secrets.token_hex(4)}"  # a subscription of its own: an earlier one pushes elsewhere
    receiver = _Receiver()
    push = stack.topology.push_subscription
    with admin_clients(stack.pubsub.host) as (publisher_admin, subscriber_admin):
        ensure_topic(publisher_admin, project, topic)
        ensure_topic(publisher_admin, project, f"{topic}-dead-letters")
        ensure_push_subscription(
            subscriber_admin,
            project,
            topic=topic,
            spec=PushSubscriptionSpec(
                name=f"{topic}-push",
                push_endpoint=receiver.url,
                ack_deadline_seconds=push.ack_deadline_seconds,
                min_backoff_seconds=push.min_backoff_seconds,
                max_backoff_seconds=push.max_backoff_seconds,
                max_delivery_attempts=push.max_delivery_attempts,
            ),
            dead_letter_topic=f"{topic}-dead-letters",
        )
    publisher = PubSubPublisher(project, topic, emulator_host=stack.pubsub.host)
    try:
        yield lambda count: [pushed for pushed, _ in _floor_samples(publisher, receiver, project, count)]
    finally:
        publisher.close()
        receiver.close()


def run(stack: LocalStack, manifests_dir: Path, progress: Callable[[str], None], hops: int = 200) -> dict[str, Any]:
    project = stack.topology.project
    name = chain_manifest()["name"]
    warm_up = shapes.chain("hop-warm-up", 4)
    shapes.write_yaml(chain_manifest(), manifests_dir)
    shapes.write_yaml(warm_up, manifests_dir)
    receiver = _Receiver()
    clock = _PublishClock(stack.bigquery.bridge.publish)
    stack.bigquery.bridge.publish = clock
    push = stack.topology.push_subscription
    with admin_clients(stack.pubsub.host) as (publisher_admin, subscriber_admin):
        ensure_topic(publisher_admin, project, FLOOR_TOPIC)
        ensure_topic(publisher_admin, project, f"{FLOOR_TOPIC}-dead-letters")
        ensure_push_subscription(
            subscriber_admin,
            project,
            topic=FLOOR_TOPIC,
            spec=PushSubscriptionSpec(
                name=f"{FLOOR_TOPIC}-push",
                push_endpoint=receiver.url,
                ack_deadline_seconds=push.ack_deadline_seconds,
                min_backoff_seconds=push.min_backoff_seconds,
                max_backoff_seconds=push.max_backoff_seconds,
                max_delivery_attempts=push.max_delivery_attempts,
            ),
            dead_letter_topic=f"{FLOOR_TOPIC}-dead-letters",
        )
    publisher = PubSubPublisher(project, FLOOR_TOPIC, emulator_host=stack.pubsub.host)
    store = SpannerRunStore(stack.database())
    hop_samples: list[tuple[float, float]] = []
    floor: list[tuple[float, float]] = []
    try:
        progress("hop latency: warming up the handlers and the floor subscription")
        _chain_run(stack, store, clock, warm_up["name"], len(warm_up["jobs"]))
        _floor_samples(publisher, receiver, project, 5)
        blocks = -(-hops // HOPS_PER_RUN)
        for block in range(blocks):
            progress(
                f"hop latency: block {block + 1}/{blocks}: {HOPS_PER_RUN} floor samples, then a {HOPS_PER_RUN}-hop chain run"
            )
            floor += _floor_samples(publisher, receiver, project, HOPS_PER_RUN)
            hop_samples += _chain_run(stack, store, clock, name, HOPS_PER_RUN + 1)
    finally:
        stack.bigquery.bridge.publish = clock._publish
        publisher.close()
        receiver.close()
    hop = Summary.of([h for h, _ in hop_samples]).scaled(1000)
    base = Summary.of([f for f, _ in floor]).scaled(1000)
    value = ratio(hop.p50, base.p50)
    return {
        "hop_ms": hop.to_json(),
        "floor_ms": base.to_json(),
        "hop_publish_ms": Summary.of([p for _, p in hop_samples]).scaled(1000).to_json(),
        "floor_publish_ms": Summary.of([p for _, p in floor]).scaled(1000).to_json(),
        "ratio_p50": value,
        "ratio_p95": ratio(hop.p95, base.p95),
        "target_ratio": TARGET_RATIO,
        "met": value <= TARGET_RATIO,
        "hop_samples_ms": [h * 1000 for h, _ in hop_samples],
        "floor_samples_ms": [f * 1000 for f, _ in floor],
    }
