"""Poison messages on the local stack end in the dead-letter subscription, with their reason where Baton knows it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from google.cloud import spanner

from devstack import pubsub_admin
from tests.chaos.conftest import ChaosStack, wait_until

pytestmark = pytest.mark.integration


@dataclass
class DeadLetter:
    data: bytes
    attributes: dict[str, str]


@dataclass
class DeadLetterReader:
    """Reads the dead-letter pull subscription; keeps what it read, since each test looks for its own letters."""

    chaos: ChaosStack
    read: list[DeadLetter] = field(default_factory=list)

    def find(self, predicate: Callable[[DeadLetter], bool], timeout_s: float) -> list[DeadLetter]:
        stack = self.chaos.stack

        def found() -> bool:
            for received in pubsub_admin.pull(stack.pubsub.host, stack.pubsub_paths.dead_letter_subscription, timeout=1.0):
                self.read.append(DeadLetter(bytes(received.message.data), dict(received.message.attributes)))
            return any(predicate(letter) for letter in self.read)

        wait_until(found, timeout_s, interval_s=0)
        return [letter for letter in self.read if predicate(letter)]


@pytest.fixture(scope="module")
def dead_letters(chaos: ChaosStack) -> DeadLetterReader:
    return DeadLetterReader(chaos)


def publish(chaos: ChaosStack, data: bytes) -> str:
    return pubsub_admin.publish(chaos.stack.pubsub.host, chaos.stack.pubsub_paths.completion_topic, data, {"origin": "test"})


def test_undecodable_messages_are_dead_lettered_by_the_handler_with_their_reason(
    chaos: ChaosStack, dead_letters: DeadLetterReader
) -> None:
    garbage = publish(chaos, b"\x00 certainly not a log entry")
    stranger = publish(chaos, json.dumps({"hello": "world"}).encode())
    foreign = json.dumps({"protoPayload": {"serviceName": "storage.googleapis.com"}}).encode()
    publish(chaos, foreign)

    [first] = dead_letters.find(lambda letter: letter.attributes.get("baton_source_message_id") == garbage, 20)
    [second] = dead_letters.find(lambda letter: letter.attributes.get("baton_source_message_id") == stranger, 20)

    assert first.data == b"\x00 certainly not a log entry"  # the message's own bytes: a replay republishes them unchanged
    assert first.attributes["baton_reason"] == "malformed"
    assert first.attributes["baton_detail"].startswith("message data is not JSON")
    assert first.attributes["baton_payload"] == "message_data"
    assert first.attributes["origin"] == "test"
    assert "CloudPubSubDeadLetterSourceDeliveryCount" not in first.attributes, "the handler, not Pub/Sub, dead-lettered it"
    assert second.attributes["baton_reason"] == "not_a_log_entry"
    # Another service's audit entry is Baton's to ignore, not a dead letter.
    time.sleep(2)
    assert dead_letters.find(lambda letter: letter.data == foreign, 0) == []


def test_a_message_that_fails_every_time_is_dead_lettered_by_pub_sub_after_max_attempts(
    chaos: ChaosStack, dead_letters: DeadLetterReader
) -> None:
    stack = chaos.stack
    run_id = stack.start_run("chaos_poison", {})["run_id"]
    database = stack.database()
    # A row the handler cannot decode: every delivery of the job's completion raises, so the function answers 500.
    database.run_in_transaction(
        lambda tx: tx.execute_update(
            "UPDATE RunJobs SET Spec = '{truncated' WHERE RunId = @run AND JobKey = 'victim'",
            params={"run": run_id},
            param_types={"run": spanner.param_types.STRING},
        )
    )
    started = time.monotonic()
    try:
        [letter] = dead_letters.find(lambda letter: run_id.encode() in letter.data, 120)
        seconds = time.monotonic() - started
    finally:
        # The row would poison the reconciler of later tests too.
        database.run_in_transaction(
            lambda tx: tx.execute_update(
                "DELETE FROM Runs WHERE RunId = @run", params={"run": run_id}, param_types={"run": spanner.param_types.STRING}
            )
        )

    attempts = stack.topology.push_subscription.max_delivery_attempts
    assert letter.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == str(attempts)
    assert json.loads(letter.data)["protoPayload"]["metadata"]["jobChange"]["after"] == "DONE"
    failures = chaos.completion_log.read_text(errors="replace").count("JSONDecodeError")
    assert failures >= attempts
    print(f"dead-lettered after {attempts} attempts, {seconds:.1f} s after the row went bad")
