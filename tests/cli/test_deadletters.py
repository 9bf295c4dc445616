"""`baton deadletters list|replay` against the Pub/Sub emulator, with messages dead-lettered by Pub/Sub itself."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from google.api_core.exceptions import DeadlineExceeded
from google.pubsub_v1 import PubsubMessage, Subscription

from baton_cli import deadletters as cli_deadletters
from baton_cli.deadletters import DELIVERY_COUNT_ATTRIBUTE, completion_topic_name, dead_letter_subscription_name, summarize
from devstack.emulators import PubSubEmulator
from devstack.pubsub_admin import admin_clients, ensure_pull_subscription, ensure_topic, pull
from tests.cli.conftest import assert_one_line_error, invoke
from tests.conftest import PROJECT
from tests.fixtures import load_fixture

pytestmark = pytest.mark.integration
MAX_DELIVERIES = 5  # Pub/Sub's minimum for a dead-letter policy


@pytest.fixture(scope="module")
def pubsub(supervisor: object) -> Iterator[PubSubEmulator]:
    emulator = PubSubEmulator.start(supervisor, project=PROJECT, name="pubsub-emulator-cli")  # type: ignore[arg-type]
    try:
        yield emulator
    finally:
        emulator.stop()


@dataclass(frozen=True)
class Topology:
    """One environment's completion topic, dead-letter topic and hold, under the CLI's default names."""

    host: str
    environment: str
    completion_topic: str
    hold: str
    source: str  # a subscription on the completion topic that dead-letters, like the push subscription

    def dead_letter(self, *messages: bytes | tuple[bytes, dict[str, str]]) -> list[str]:
        """Publish to the completion topic and refuse them until Pub/Sub moves them to the dead-letter topic.

        Returns their message IDs on the hold (the dead-letter topic gives each a new one), in order.
        """
        payloads = [m if isinstance(m, tuple) else (m, {}) for m in messages]
        with admin_clients(self.host) as (publisher, subscriber):
            published = publisher.publish(
                topic=self.completion_topic, messages=[PubsubMessage(data=data, attributes=attrs) for data, attrs in payloads]
            )
            for _ in range(MAX_DELIVERIES):
                received = subscriber.pull(subscription=self.source, max_messages=100, timeout=10).received_messages
                assert {m.message.message_id for m in received} == set(published.message_ids)
                ack_ids = [m.ack_id for m in received]
                subscriber.modify_ack_deadline(subscription=self.source, ack_ids=ack_ids, ack_deadline_seconds=0)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            # The emulator forwards to the dead-letter topic when it would deliver once more.
            assert pull(self.host, self.source, timeout=1) == []
            held = {message.data: message_id for message_id, message in self.on_hold().items()}
            if all(data in held for data, _ in payloads):
                return [held[data] for data, _ in payloads]
            time.sleep(0.2)
        raise AssertionError(f"{len(payloads)} messages never all reached {self.hold}")

    def on_hold(self) -> dict[str, Any]:
        """What waits on the hold, by message ID; the leases are handed straight back."""
        with admin_clients(self.host) as (_, subscriber):
            try:
                received = list(subscriber.pull(subscription=self.hold, max_messages=100, timeout=1).received_messages)
            except DeadlineExceeded:
                return {}
            if received:
                subscriber.modify_ack_deadline(
                    subscription=self.hold, ack_ids=[m.ack_id for m in received], ack_deadline_seconds=0
                )
        return {m.message.message_id: m.message for m in received}


def table_rows(output: str) -> dict[str, list[str]]:
    """Table rows by their first cell, a message id: cells are three or more spaces apart."""
    rows = [re.split(r" {3,}", line.strip()) for line in output.splitlines()]
    return {row[0]: row for row in rows if row[0].isdigit()}


@pytest.fixture
def topology(pubsub: PubSubEmulator, monkeypatch: pytest.MonkeyPatch) -> Topology:
    """A fresh environment name per test gives fresh resources under the same naming rules."""
    # The emulator holds an empty pull until its deadline is a second away; keep the CLI's short.
    monkeypatch.setattr(cli_deadletters, "PULL_TIMEOUT_S", 1.0)
    monkeypatch.setattr(cli_deadletters, "NEXT_PULL_TIMEOUT_S", 1.0)
    environment = f"t{secrets.token_hex(3)}"
    completion = completion_topic_name(environment)
    dead_letter_topic = f"{completion}-dead-letter"
    with admin_clients(pubsub.host) as (publisher, subscriber):
        completion_path = ensure_topic(publisher, PROJECT, completion)
        ensure_topic(publisher, PROJECT, dead_letter_topic)
        hold = ensure_pull_subscription(
            subscriber, PROJECT, topic=dead_letter_topic, name=dead_letter_subscription_name(environment)
        )
        source = f"projects/{PROJECT}/subscriptions/{completion}-source"
        subscriber.create_subscription(
            request=Subscription(
                name=source,
                topic=completion_path,
                ack_deadline_seconds=10,
                dead_letter_policy={
                    "dead_letter_topic": f"projects/{PROJECT}/topics/{dead_letter_topic}",
                    "max_delivery_attempts": MAX_DELIVERIES,
                },
            )
        )
    for name, value in {"BATON_ENV": environment, "BATON_PROJECT": PROJECT, **pubsub.env()}.items():
        monkeypatch.setenv(name, value)
    return Topology(pubsub.host, environment, completion_path, hold, source)


def test_list_shows_dead_letters_with_their_delivery_count_and_payload(topology: Topology) -> None:
    entry = load_fixture("audit_log/job_done_backend_error")
    labels = entry["protoPayload"]["metadata"]["jobChange"]["job"]["jobConfig"]["labels"]
    garbage = b"\x00not json at all, but long enough to be cut short after eighty bytes: " + b"x" * 100
    audit_id, garbage_id = topology.dead_letter((json.dumps(entry).encode(), {"logging.googleapis.com/trace": "t"}), garbage)

    result = invoke("deadletters", "list")
    assert result.exit_code == 0, result.output
    rows = table_rows(result.stdout)
    assert set(rows) == {audit_id, garbage_id}
    _, published, deliveries, payload = rows[audit_id]
    assert f"run {labels['baton_run']} job {labels['baton_job']} attempt {labels['baton_attempt']}" in payload
    assert "failed: backendError" in payload
    assert deliveries == str(MAX_DELIVERIES)
    assert published.startswith(dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"))
    assert rows[garbage_id][3].startswith("not json at all") and "…" in rows[garbage_id][3]

    # Listing acknowledged nothing and handed the leases back: both can be read again at once.
    again = topology.on_hold()
    assert set(again) == {audit_id, garbage_id}
    assert {message.attributes[DELIVERY_COUNT_ATTRIBUTE] for message in again.values()} == {str(MAX_DELIVERIES)}


def test_list_json_describes_each_dead_letter_and_acknowledges_nothing(topology: Topology) -> None:
    empty = invoke("deadletters", "list", "--json")
    assert empty.exit_code == 0 and json.loads(empty.stdout) == {
        "schema_version": 1,
        "subscription": topology.hold,
        "dead_letters": [],
    }
    entry = load_fixture("audit_log/job_done_backend_error")
    labels = entry["protoPayload"]["metadata"]["jobChange"]["job"]["jobConfig"]["labels"]
    data = json.dumps(entry).encode()
    (message_id,) = topology.dead_letter((data, {"origin": "sink"}))

    result = invoke("deadletters", "list", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["schema_version"] == 1 and document["subscription"] == topology.hold
    (letter,) = document["dead_letters"]
    assert letter["message_id"] == message_id
    assert letter["delivery_count"] == MAX_DELIVERIES
    assert letter["attributes"]["origin"] == "sink"
    assert base64.b64decode(letter["data_base64"]) == data
    assert letter["summary"].startswith(f"run {labels['baton_run']} job {labels['baton_job']}")
    assert letter["publish_time"].startswith(dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT")) and letter["publish_time"].endswith(
        "Z"
    )
    assert set(topology.on_hold()) == {message_id}  # still there: listing acknowledged nothing


def test_list_limit_and_an_empty_hold(topology: Topology) -> None:
    empty = invoke("deadletters", "list")
    assert empty.exit_code == 0 and f"no dead letters on {topology.hold}" in empty.stderr
    ids = set(topology.dead_letter(*(f"message {n}".encode() for n in range(3))))
    listed = table_rows(invoke("deadletters", "list", "--limit", "2").stdout)
    assert len(listed) == 2 and set(listed) <= ids


def test_replay_republishes_data_and_attributes_then_acknowledges(topology: Topology) -> None:
    entry = json.dumps(load_fixture("audit_log/job_done_success")).encode()
    replayed_id, kept_id = topology.dead_letter((entry, {"origin": "sink"}), b"leave me here")

    result = invoke("deadletters", "replay", replayed_id)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"replayed {replayed_id} as ")
    assert f"1 dead letter(s) replayed to {topology.completion_topic}" in result.stderr

    # The completion topic has the event again, byte for byte, with its attributes.
    republished = pull(topology.host, topology.source, timeout=10)
    assert [m.message.data for m in republished] == [entry]
    assert republished[0].message.attributes["origin"] == "sink"
    assert republished[0].message.message_id == result.stdout.split()[-1]
    # Only the replayed dead letter was acknowledged.
    assert set(topology.on_hold()) == {kept_id}


def test_replay_all_and_unknown_ids(topology: Topology) -> None:
    ids = set(topology.dead_letter(b"event 0", b"event 1"))
    missing = assert_one_line_error(invoke("deadletters", "replay", "424242"), "not on", "424242")
    assert topology.hold in missing
    assert set(topology.on_hold()) == ids  # nothing lost, nothing left leased

    result = invoke("deadletters", "replay", "--all")
    assert result.exit_code == 0, result.output
    assert {line.split()[1] for line in result.stdout.splitlines()} == ids
    assert topology.on_hold() == {}
    assert sorted(m.message.data for m in pull(topology.host, topology.source, timeout=10)) == [b"event 0", b"event 1"]


def test_replay_needs_ids_or_all(topology: Topology) -> None:
    for args in ([], ["--all", "123"]):
        result = invoke("deadletters", "replay", *args)
        assert result.exit_code == 2 and "give message ids or --all" in result.output


def test_a_missing_subscription_is_one_line(topology: Topology, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_DEAD_LETTER_SUBSCRIPTION", "nobody-made-this")
    assert_one_line_error(
        invoke("deadletters", "list"), "subscriptions/nobody-made-this not found", "BATON_DEAD_LETTER_SUBSCRIPTION"
    )


def test_an_unreachable_emulator_is_one_line(topology: Topology, monkeypatch: pytest.MonkeyPatch) -> None:
    from devstack.processes import free_port

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    assert_one_line_error(invoke("deadletters", "list"), "the Pub/Sub emulator at", "is unreachable")


def test_default_names_are_the_platform_stack_names() -> None:
    """The CLI restates two resource names; cdk/config.py makes them for the stacks."""
    from cdk.config import ENVIRONMENTS

    for config in ENVIRONMENTS.values():
        assert completion_topic_name(config.name) == config.completion_topic
        assert dead_letter_subscription_name(config.name) == config.dead_letter_subscription


def test_summarize_ignored_log_entries_and_short_payloads() -> None:
    assert summarize(json.dumps(load_fixture("audit_log/legacy_job_completed")).encode()).startswith(
        "LogEntry ignored as legacy_audit_data"
    )
    assert summarize(b'{"a": 1}') == '{"a": 1}'


def test_a_failed_publish_acknowledges_nothing(topology: Topology, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dead letter is acknowledged only once the completion topic has it: here it never does."""
    (held,) = topology.dead_letter(b"precious event")
    monkeypatch.setenv("BATON_COMPLETION_TOPIC", "no-such-topic")
    result = invoke("deadletters", "replay", held)
    assert_one_line_error(result, f"topic projects/{PROJECT}/topics/no-such-topic not found", "BATON_COMPLETION_TOPIC")
    assert result.stdout == ""
    assert set(topology.on_hold()) == {held}  # still there, and its lease handed back
