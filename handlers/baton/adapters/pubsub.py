"""Pub/Sub adapter: run events and dead letters. Publishing waits for the ack, never for a job."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from google.cloud.pubsub_v1 import PublisherClient

from baton.domain.records import Continuation
from baton.errors import TransientError
from baton.service.ports import WORK_ATTRIBUTE, DeadLetters, EventPublisher, WorkQueue

PUBLISH_TIMEOUT_S = 30.0


class PubSubEventPublisher(EventPublisher):
    def __init__(self, topic_path: str, client: PublisherClient | None = None) -> None:
        self.topic_path = topic_path
        self.client = client or PublisherClient()

    def publish(self, event: Mapping[str, Any]) -> None:
        data = json.dumps(event, sort_keys=True, default=str).encode()
        attributes = {"type": str(event.get("type", "")), "run_id": str(event.get("run_id", ""))}
        self.client.publish(self.topic_path, data, **attributes).result(timeout=PUBLISH_TIMEOUT_S)


class PubSubDeadLetters(DeadLetters):
    """The dead-letter topic that bigquery_job_completed writes to itself, with the reason in the attributes."""

    def __init__(self, topic_path: str, client: Any = None) -> None:
        self.topic_path = topic_path
        self.client: Any = client or PublisherClient()

    def put(self, data: bytes, attributes: Mapping[str, str]) -> str | None:
        try:
            message_id = self.client.publish(self.topic_path, data, **attributes).result(timeout=PUBLISH_TIMEOUT_S)
        except Exception as exc:  # any publishing failure: let Pub/Sub redeliver, and dead-letter it itself in the end
            raise TransientError(f"dead-letter topic {self.topic_path}: {exc}") from exc
        return str(message_id)


class PubSubWorkQueue(WorkQueue):
    """Continuations as messages on the work topic; its push subscription invokes bigquery_job_completed."""

    def __init__(self, topic_path: str, client: PublisherClient | None = None) -> None:
        self.topic_path = topic_path
        self.client = client or PublisherClient()

    def publish(self, items: Sequence[Continuation]) -> None:
        try:
            futures = [
                self.client.publish(self.topic_path, json.dumps(item.to_json()).encode(), **{WORK_ATTRIBUTE: item.kind})
                for item in items
            ]
            for future in futures:
                future.result(timeout=PUBLISH_TIMEOUT_S)
        except Exception as exc:  # any publishing failure: the caller's message is redelivered
            raise TransientError(f"work topic {self.topic_path}: {exc}") from exc


def topic_path(project: str, topic: str) -> str:
    """Accept a bare topic name or a full `projects/P/topics/T` path."""
    return topic if topic.startswith("projects/") else f"projects/{project}/topics/{topic}"
