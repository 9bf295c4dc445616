"""The local stack's process management and real emulators: start, use, and stop with nothing left behind.

Pub/Sub emulator behaviour measured here (emulator 0.8.20), which the local stack relies on:
- push bodies carry ``message.data`` base64, attributes, both camelCase and snake_case IDs, and no
  ``deliveryAttempt``;
- a push endpoint answering 500 is retried and, after ``max_delivery_attempts`` (5..100, enforced), the message
  is published to the dead-letter topic with ``CloudPubSubDeadLetter*`` attributes;
- retry backoff is only loosely honoured: the first retry comes ~1 s after the first attempt whatever the
  minimum backoff, later ones every few seconds (see the printed gaps).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from google.cloud import spanner

from devstack import pubsub_admin
from devstack.emulators import FunctionServer, PubSubEmulator, SpannerEmulator, create_spanner_database, emulator_env
from devstack.processes import (
    ProcessSupervisor,
    ReadinessError,
    group_members,
    http_get,
    port_is_free,
    reap_orphans,
    start_process,
    wait_for_tcp,
)

PROJECT = "devstack-test"
REPO = Path(__file__).resolve().parents[2]


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@dataclass
class PushReceiver:
    """A local push endpoint: ``/ok...`` acknowledges (204), anything else fails (500)."""

    server: ThreadingHTTPServer
    received: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [body for _, p, body in self.received if p == path]

    def times(self, path: str) -> list[float]:
        return [at for at, p, _ in self.received if p == path]


@pytest.fixture(scope="module")
def receiver() -> Iterator[PushReceiver]:
    received: list[tuple[float, str, dict[str, Any]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((time.monotonic(), self.path, body))
            self.send_response(204 if self.path.startswith("/ok") else 500)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield PushReceiver(server=server, received=received)
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Stack:
    supervisor: ProcessSupervisor
    spanner: SpannerEmulator
    pubsub: PubSubEmulator


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with ProcessSupervisor(tmp_path_factory.mktemp("devstack"), handle_signals=False) as supervisor:
        yield Stack(
            supervisor=supervisor,
            spanner=SpannerEmulator.start(supervisor),
            pubsub=PubSubEmulator.start(supervisor, project=PROJECT),
        )


# --- emulators -------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_spanner_emulator_creates_database_and_runs_transactions(stack: Stack) -> None:
    ddl = ["CREATE TABLE Notes (Id STRING(36) NOT NULL, Body STRING(MAX)) PRIMARY KEY (Id)"]
    create_spanner_database(stack.spanner.host, project=PROJECT, instance="probe", database="notes", ddl=ddl)
    create_spanner_database(stack.spanner.host, project=PROJECT, instance="probe", database="notes", ddl=ddl)  # idempotent

    with emulator_env(stack.spanner.env()):
        instance = spanner.Client(project=PROJECT).instance("probe")  # type: ignore[no-untyped-call]
        instance.reload()
        database = instance.database("notes")
        with database.batch() as batch:
            batch.insert("Notes", ("Id", "Body"), [("a", "hello"), ("b", "world")])
        updated = database.run_in_transaction(lambda tx: tx.execute_update("UPDATE Notes SET Body = 'bye' WHERE Id = 'a'"))
        with database.snapshot() as snapshot:
            rows = sorted(tuple(row) for row in snapshot.execute_sql("SELECT Id, Body FROM Notes"))

    assert instance.configuration_name == f"projects/{PROJECT}/instanceConfigs/emulator-config"
    assert updated == 1
    assert rows == [("a", "bye"), ("b", "world")]


def _provision(
    stack: Stack, prefix: str, endpoint: str, *, min_backoff: float, max_backoff: float
) -> pubsub_admin.PubSubTopology:
    spec = pubsub_admin.PushSubscriptionSpec(
        name=f"{prefix}-push",
        push_endpoint=endpoint,
        ack_deadline_seconds=10,
        min_backoff_seconds=min_backoff,
        max_backoff_seconds=max_backoff,
        max_delivery_attempts=5,
    )
    kwargs: dict[str, Any] = {
        "completion_topic": f"{prefix}-completions",
        "dead_letter_topic": f"{prefix}-dead-letters",
        "run_events_topic": f"{prefix}-run-events",
        "push_subscription": spec,
    }
    topology = pubsub_admin.provision_pubsub(stack.pubsub.host, PROJECT, **kwargs)
    assert pubsub_admin.provision_pubsub(stack.pubsub.host, PROJECT, **kwargs) == topology  # idempotent
    return topology


@pytest.mark.integration
def test_push_subscription_delivers_base64_data_and_policy(stack: Stack, receiver: PushReceiver) -> None:
    topology = _provision(stack, "ack", receiver.url("/ok-ack"), min_backoff=1, max_backoff=30)
    with pubsub_admin.admin_clients(stack.pubsub.host) as (_, subscriber):
        subscription = subscriber.get_subscription(subscription=topology.push_subscription)
    assert subscription.topic == topology.completion_topic
    assert subscription.push_config.push_endpoint == receiver.url("/ok-ack")
    assert subscription.ack_deadline_seconds == 10
    assert subscription.retry_policy.minimum_backoff.total_seconds() == 1
    assert subscription.retry_policy.maximum_backoff.total_seconds() == 30
    assert subscription.dead_letter_policy.dead_letter_topic == topology.dead_letter_topic
    assert subscription.dead_letter_policy.max_delivery_attempts == 5

    payload = json.dumps({"job": "baton_dev_r1_a_1"}).encode()
    message_id = pubsub_admin.publish(stack.pubsub.host, topology.completion_topic, payload, {"origin": "test"})

    assert wait_until(lambda: len(receiver.bodies("/ok-ack")) == 1, timeout=10)
    time.sleep(2.5)  # a 204 acknowledges: the emulator would redeliver a NACK within ~1 s
    [body] = receiver.bodies("/ok-ack")
    assert body["subscription"] == topology.push_subscription
    assert base64.b64decode(body["message"]["data"]) == payload
    assert body["message"]["attributes"] == {"origin": "test"}
    assert body["message"]["messageId"] == message_id
    assert "deliveryAttempt" not in body  # unlike Cloud Pub/Sub with a dead-letter policy


@pytest.mark.integration
def test_failing_push_ends_in_dead_letter_subscription(stack: Stack, receiver: PushReceiver) -> None:
    topology = _provision(stack, "fail", receiver.url("/fail"), min_backoff=1, max_backoff=2)
    published_at = time.monotonic()
    pubsub_admin.publish(stack.pubsub.host, topology.completion_topic, b"cannot be processed", {"origin": "test"})

    dead: list[Any] = []

    def dead_lettered() -> bool:
        dead.extend(pubsub_admin.pull(stack.pubsub.host, topology.dead_letter_subscription, timeout=0.5))
        return bool(dead)

    assert wait_until(dead_lettered, timeout=40, interval=0)
    dead_at = time.monotonic()
    time.sleep(2)  # nothing is pushed after dead-lettering
    attempts = receiver.times("/fail")
    gaps = [round(later - earlier, 2) for earlier, later in itertools.pairwise(attempts)]
    print(
        f"push attempts at {[round(t - published_at, 2) for t in attempts]} s, gaps {gaps} s, "
        f"dead-lettered at {dead_at - published_at:.2f} s"
    )

    assert len(attempts) == 5
    assert all(gap >= 0.9 for gap in gaps)
    [message] = dead
    assert message.message.data == b"cannot be processed"
    assert message.message.attributes["origin"] == "test"
    assert message.message.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    assert message.message.attributes["CloudPubSubDeadLetterSourceSubscription"] == "fail-push"


FUNCTION_SOURCE = """
import json
import os

import functions_framework


@functions_framework.http
def record(request):
    if request.method == "GET":
        return os.environ["GREETING"]
    with open(os.environ["RECORD_FILE"], "a") as out:
        out.write(json.dumps(request.get_json()) + "\\n")
    return "", 204
"""


@pytest.mark.integration
def test_function_server_receives_pushes_with_its_environment(stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "main.py"
    source.write_text(textwrap.dedent(FUNCTION_SOURCE))
    record_file = tmp_path / "pushes.jsonl"
    server = FunctionServer.start(
        stack.supervisor, source=source, target="record", env={"GREETING": "hello", "RECORD_FILE": str(record_file)}
    )
    try:
        assert http_get(server.url) == (200, "hello")
        topology = _provision(stack, "function", server.url, min_backoff=1, max_backoff=2)
        pubsub_admin.publish(stack.pubsub.host, topology.completion_topic, b"to the function")
        assert wait_until(record_file.exists, timeout=15)
        [line] = record_file.read_text().splitlines()
        assert base64.b64decode(json.loads(line)["message"]["data"]) == b"to the function"
    finally:
        stack.supervisor.stop(server.process)
    assert not group_members(server.process.pid)
    assert port_is_free(server.port)


def test_function_server_that_cannot_load_its_target_fails_fast_and_leaves_nothing(tmp_path: Path) -> None:
    source = tmp_path / "main.py"
    source.write_text(textwrap.dedent(FUNCTION_SOURCE))
    with ProcessSupervisor(tmp_path / "work", handle_signals=False) as supervisor:
        started = time.monotonic()
        with pytest.raises(ReadinessError, match=r"(?s)function-missing: exited .*missing"):
            FunctionServer.start(supervisor, source=source, target="missing", timeout=20)
        assert time.monotonic() - started < 15
        [process] = supervisor.processes
        assert process.stopped
        assert group_members(process.pid) == []


@pytest.mark.integration
def test_close_stops_every_process_group_and_frees_ports(tmp_path: Path) -> None:
    source = tmp_path / "main.py"
    source.write_text(textwrap.dedent(FUNCTION_SOURCE))
    supervisor = ProcessSupervisor(tmp_path / "work", handle_signals=False)
    try:
        spanner_emulator = SpannerEmulator.start(supervisor)
        pubsub_emulator = PubSubEmulator.start(supervisor, project=PROJECT)
        server = FunctionServer.start(supervisor, source=source, target="record", env={"GREETING": "x", "RECORD_FILE": "-"})
        processes = [spanner_emulator.process, pubsub_emulator.process, server.process]
        ports = [spanner_emulator.port, pubsub_emulator.port, server.port]
        # The Pub/Sub emulator is gcloud plus Java, the server gunicorn plus a worker: groups, not single PIDs.
        assert len(group_members(pubsub_emulator.process.pid)) >= 2
        assert len(group_members(server.process.pid)) >= 2
    finally:
        started = time.monotonic()
        supervisor.close()
        took = time.monotonic() - started

    for process in processes:
        assert process.exit_code() is not None
        assert group_members(process.pid) == []
        assert process.pid_file is not None
        assert not process.pid_file.exists()
    assert all(port_is_free(port) for port in ports)
    assert took < 10, "SIGTERM should be enough; SIGKILL comes only after the stop timeout"


# --- process supervision (no emulator) ---------------------------------------------------------------------

SUPERVISED_CHILD = """
import sys, time
from pathlib import Path
from devstack.processes import ProcessSupervisor, group_members

mode = sys.argv[2]
supervisor = ProcessSupervisor(Path(sys.argv[1]))
process = supervisor.start("sleeper", ["sh", "-c", "sleep 300 & sleep 300"])
deadline = time.monotonic() + 5
while len(group_members(process.pid)) < 2 and time.monotonic() < deadline:
    time.sleep(0.05)
print(process.pid, len(group_members(process.pid)), flush=True)
if mode == "exception":
    with supervisor:
        raise RuntimeError("boom")
if mode == "atexit":
    sys.exit(0)
time.sleep(300)
"""


def _run_supervised_child(work: Path, mode: str) -> tuple[subprocess.Popen[str], int]:
    child = subprocess.Popen(
        [sys.executable, "-c", SUPERVISED_CHILD, str(work), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.stdout is not None
    pgid, members = map(int, child.stdout.readline().split())
    assert members >= 2, "the child's group should hold sh and a background sleep"
    return child, pgid


@pytest.mark.parametrize(
    ("mode", "send"),
    [("wait", signal.SIGTERM), ("wait", signal.SIGINT), ("exception", None), ("atexit", None)],
)
def test_supervisor_stops_children_when_its_process_ends(tmp_path: Path, mode: str, send: signal.Signals | None) -> None:
    child, pgid = _run_supervised_child(tmp_path, mode)
    try:
        if send is not None:
            child.send_signal(send)
        child.wait(timeout=15)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert group_members(pgid) == []
    assert not (tmp_path / "pids" / "sleeper.pid").exists()
    if send is not None:
        assert child.returncode != 0  # the signal still ends the process after cleanup


def test_orphans_of_a_killed_supervisor_are_reaped(tmp_path: Path) -> None:
    killed, orphan = _run_supervised_child(tmp_path / "killed", "wait")
    live, alive = _run_supervised_child(tmp_path / "live", "wait")
    try:
        killed.kill()  # SIGKILL: no handler, no atexit; its sleepers survive
        killed.wait()
        assert group_members(orphan)

        assert reap_orphans(tmp_path) == [orphan]
        assert group_members(orphan) == []
        assert group_members(alive), "a live supervisor's children are not orphans"
    finally:
        live.terminate()
        live.wait(timeout=15)
    assert group_members(alive) == []


def test_restart_under_same_name_replaces_orphan_but_not_a_live_child(tmp_path: Path) -> None:
    killed, orphan = _run_supervised_child(tmp_path, "wait")
    killed.kill()
    killed.wait()

    replacement = start_process("sleeper", ["sleep", "30"], work_dir=tmp_path)
    try:
        assert group_members(orphan) == []
        with pytest.raises(RuntimeError, match="already runs"):
            start_process("sleeper", ["sleep", "30"], work_dir=tmp_path)
        assert group_members(replacement.pid)
    finally:
        replacement.stop()
    assert group_members(replacement.pid) == []


def test_readiness_failure_reports_exit_code_and_log_tail(tmp_path: Path) -> None:
    crashing = start_process("crashing", ["sh", "-c", "echo port already taken >&2; exit 3"], work_dir=tmp_path)
    with pytest.raises(ReadinessError, match=r"(?s)exited with code 3.*port already taken"):
        wait_for_tcp("127.0.0.1", 1, timeout=10, process=crashing)

    silent = start_process("silent", ["sh", "-c", "echo starting; sleep 30"], work_dir=tmp_path)
    try:
        with pytest.raises(ReadinessError, match=r"(?s)not accepting TCP.*still running.*starting"):
            silent.wait_for_tcp(1, timeout=0.5)
    finally:
        silent.stop()
    assert silent.exit_code() == -signal.SIGTERM
