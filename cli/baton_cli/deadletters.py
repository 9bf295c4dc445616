"""Completion events that exhausted their deliveries: read them off the dead-letter hold, replay them.

Pub/Sub forwards a message the completion function kept refusing to the
dead-letter topic; the platform stack keeps a pull subscription on it so that
nothing is dropped. Reading leases messages, so a listing hands its leases back
at once; a replay publishes to the completion topic first and acknowledges the
dead letter only once that publish succeeded, so a failure loses nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.api_core.exceptions import DeadlineExceeded, NotFound
from google.pubsub_v1 import PublisherClient, PubsubMessage, ReceivedMessage, SubscriberClient

from baton.config import Settings
from baton.entrypoints.audit_log import Ignored, parse_log_entry
from baton.entrypoints.dead_letters import DETAIL_ATTRIBUTE, PAYLOAD_ATTRIBUTE, REASON_ATTRIBUTE
from baton.errors import BatonError

DELIVERY_COUNT_ATTRIBUTE = "CloudPubSubDeadLetterSourceDeliveryCount"
SUBSCRIPTION_VAR = "BATON_DEAD_LETTER_SUBSCRIPTION"
COMPLETION_TOPIC_VAR = "BATON_COMPLETION_TOPIC"
SUMMARY_BYTES = 80
PULL_BATCH = 100
# Pub/Sub answers an empty pull only when its deadline is near: the first pull waits for the hold to answer,
# later ones only for stragglers of a batch already seen.
PULL_TIMEOUT_S = 5.0
NEXT_PULL_TIMEOUT_S = 2.0


# Resource names as cdk/config.py makes them; a test keeps the two in step.
def completion_topic_name(environment: str) -> str:
    return f"baton-{environment}-job-completed"


def dead_letter_subscription_name(environment: str) -> str:
    return f"baton-{environment}-job-completed-dead-letter-hold"


class ResourceNotFound(BatonError):
    """The dead-letter subscription or the completion topic does not exist (wrong environment or name)."""


@dataclass(frozen=True)
class DeadLetterSettings:
    subscription: str  # projects/P/subscriptions/S
    completion_topic: str  # projects/P/topics/T

    @classmethod
    def from_env(cls, settings: Settings, env: Mapping[str, str]) -> DeadLetterSettings:
        subscription = env.get(SUBSCRIPTION_VAR) or dead_letter_subscription_name(settings.environment)
        topic = env.get(COMPLETION_TOPIC_VAR) or completion_topic_name(settings.environment)
        return cls(_path(settings.project, "subscriptions", subscription), _path(settings.project, "topics", topic))


def _path(project: str, kind: str, name: str) -> str:
    return name if name.startswith("projects/") else f"projects/{project}/{kind}/{name}"


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    ack_id: str
    data: bytes
    attributes: Mapping[str, str]
    publish_time: dt.datetime | None = None

    @property
    def delivery_count(self) -> int | None:
        raw = self.attributes.get(DELIVERY_COUNT_ATTRIBUTE)
        return int(raw) if raw is not None and raw.isdigit() else None

    @property
    def summary(self) -> str:
        return summarize(self.data)

    @property
    def reason(self) -> str:
        """Why: the handler's own reason and detail, or that Pub/Sub forwarded it after its last delivery."""
        reason = self.attributes.get(REASON_ATTRIBUTE)
        if reason is None:
            count = self.delivery_count
            return f"not acknowledged after {count} deliveries" if count else "-"
        detail = self.attributes.get(DETAIL_ATTRIBUTE)
        return f"{reason}: {detail}" if detail else reason

    @property
    def payload_kind(self) -> str:
        """`message_data` (the event as delivered, replayable) or `push_body` (the envelope itself was unreadable)."""
        return self.attributes.get(PAYLOAD_ATTRIBUTE) or "message_data"


def summarize(data: bytes) -> str:
    """Which run and job a dead letter was about when it is an audit LogEntry, else its first bytes."""
    try:
        entry: object = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        entry = None
    if isinstance(entry, dict):
        parsed = parse_log_entry(entry)
        if not isinstance(parsed, Ignored):
            done = parsed.completion
            outcome = f"failed: {done.error.reason}" if done.error else "succeeded"
            return f"run {done.run_id} job {done.job_key} attempt {done.attempt} ({outcome}, env {parsed.environment})"
        if parsed.reason.value not in ("not_an_object", "not_a_log_entry"):
            return f"LogEntry ignored as {parsed.reason.value}: {parsed.message}"[: SUMMARY_BYTES * 2]
    head = data[:SUMMARY_BYTES].decode("utf-8", errors="replace")
    head = "".join(ch if ch.isprintable() else " " for ch in head)
    return head + ("…" if len(data) > SUMMARY_BYTES else "")


def _publish_time(raw: Any) -> dt.datetime | None:
    """proto-plus hands a Timestamp field out as a datetime; a bare protobuf Timestamp is converted."""
    if isinstance(raw, dt.datetime):
        return raw if raw.tzinfo else raw.replace(tzinfo=dt.UTC)
    if raw is not None and hasattr(raw, "ToDatetime"):
        converted: dt.datetime = raw.ToDatetime(tzinfo=dt.UTC)
        return converted
    return None


def _dead_letter(received: ReceivedMessage) -> DeadLetter:
    message = received.message
    return DeadLetter(
        message_id=message.message_id,
        ack_id=received.ack_id,
        data=bytes(message.data),
        attributes=dict(message.attributes),
        publish_time=_publish_time(message.publish_time),
    )


@dataclass
class ReplayReport:
    replayed: list[str] = field(default_factory=list)  # message IDs, now acknowledged on the hold
    new_message_ids: list[str] = field(default_factory=list)  # as republished to the completion topic
    missing: list[str] = field(default_factory=list)  # asked for, not found on the hold


class DeadLetterQueue:
    """The dead-letter pull subscription and the completion topic that replays go back to."""

    def __init__(self, subscriber: SubscriberClient, publisher: PublisherClient, settings: DeadLetterSettings) -> None:
        self.subscriber = subscriber
        self.publisher = publisher
        self.settings = settings

    @classmethod
    def connect(cls, settings: DeadLetterSettings) -> DeadLetterQueue:
        """Clients honour PUBSUB_EMULATOR_HOST, so the same code reads the local stack's emulator."""
        return cls(SubscriberClient(), PublisherClient(), settings)

    def _pull(self, max_messages: int, timeout_s: float) -> list[DeadLetter]:
        try:
            response = self.subscriber.pull(subscription=self.settings.subscription, max_messages=max_messages, timeout=timeout_s)
        except DeadlineExceeded:
            return []
        except NotFound:
            raise ResourceNotFound(
                f"subscription {self.settings.subscription} not found; set {SUBSCRIPTION_VAR} to the dead-letter hold"
            ) from None
        return [_dead_letter(received) for received in response.received_messages]

    def _release(self, letters: Iterable[DeadLetter]) -> None:
        """Hand leases back at once, so the messages can be read again without waiting out the ack deadline."""
        ack_ids = [letter.ack_id for letter in letters]
        for start in range(0, len(ack_ids), 1000):
            self.subscriber.modify_ack_deadline(
                subscription=self.settings.subscription, ack_ids=ack_ids[start : start + 1000], ack_deadline_seconds=0
            )

    def _drain(self, limit: int | None, wanted: set[str] | None) -> list[DeadLetter]:
        """Lease messages until `limit` are held, every wanted ID is found, or the subscription runs dry."""
        held: dict[str, DeadLetter] = {}
        duplicates: list[DeadLetter] = []
        while limit is None or len(held) < limit:
            size = PULL_BATCH if limit is None else min(PULL_BATCH, limit - len(held))
            batch = self._pull(size, NEXT_PULL_TIMEOUT_S if held else PULL_TIMEOUT_S)
            if not batch:
                break
            for letter in batch:
                if letter.message_id in held:
                    duplicates.append(letter)  # a lease ran out and Pub/Sub handed the message out again
                else:
                    held[letter.message_id] = letter
            if wanted is not None and wanted <= held.keys():
                break
        if duplicates:
            self._release(duplicates)
        return list(held.values())

    def peek(self, limit: int) -> list[DeadLetter]:
        """Up to `limit` dead letters, oldest first as far as Pub/Sub's ordering goes; nothing is acknowledged."""
        letters = self._drain(limit, None)
        self._release(letters)
        return sorted(letters, key=lambda letter: letter.publish_time or dt.datetime.min.replace(tzinfo=dt.UTC))

    def replay(self, message_ids: Sequence[str] | None) -> ReplayReport:
        """Republish the given dead letters (all of them when None) with their data and attributes."""
        wanted = None if message_ids is None else set(message_ids)
        letters = self._drain(None, wanted)
        chosen = [letter for letter in letters if wanted is None or letter.message_id in wanted]
        report = ReplayReport(missing=sorted(wanted - {letter.message_id for letter in letters}) if wanted else [])
        chosen_ids = {letter.message_id for letter in chosen}
        self._release(letter for letter in letters if letter.message_id not in chosen_ids)
        try:
            for start in range(0, len(chosen), PULL_BATCH):
                batch = chosen[start : start + PULL_BATCH]
                try:
                    response = self.publisher.publish(
                        topic=self.settings.completion_topic,
                        messages=[PubsubMessage(data=letter.data, attributes=dict(letter.attributes)) for letter in batch],
                    )
                except NotFound:
                    raise ResourceNotFound(
                        f"topic {self.settings.completion_topic} not found; set {COMPLETION_TOPIC_VAR} to the completion topic"
                    ) from None
                # Only now is the event safe on the completion topic: acknowledge the dead letters.
                self.subscriber.acknowledge(subscription=self.settings.subscription, ack_ids=[letter.ack_id for letter in batch])
                report.replayed += [letter.message_id for letter in batch]
                report.new_message_ids += list(response.message_ids)
        finally:
            self._release(letter for letter in chosen if letter.message_id not in report.replayed)
        return report
