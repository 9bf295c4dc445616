"""Pub/Sub adapter: run events and dead letters. Publishing waits for the ack, never for a job."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from google.cloud.pubsub_v1 import PublisherClient

from baton.ports import EventPublisher

PUBLISH_TIMEOUT_S = 30.0


class PubSubEventPublisher(EventPublisher):
    def __init__(self, topic_path: str, client: PublisherClient | None = None) -> None:
        self.topic_path = topic_path
        self.client = client or PublisherClient()

    def publish(self, event: Mapping[str, Any]) -> None:
        data = json.dumps(event, sort_keys=True, default=str).encode()
        attributes = {"type": str(event.get("type", "")), "run_id": str(event.get("run_id", ""))}
        self.client.publish(self.topic_path, data, **attributes).result(timeout=PUBLISH_TIMEOUT_S)


def topic_path(project: str, topic: str) -> str:
    """Accept a bare topic name or a full `projects/P/topics/T` path."""
    return topic if topic.startswith("projects/") else f"projects/{project}/topics/{topic}"
