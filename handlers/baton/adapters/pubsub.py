"""Pub/Sub adapter: run events and dead letters. Publishing waits for the ack, never for a job."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from google.api_core.retry import Retry
from google.cloud.pubsub_v1 import PublisherClient
from google.cloud.pubsub_v1.types import BatchSettings

from baton.domain.records import Continuation
from baton.domain.timing import TimeBudget
from baton.errors import TransientError
from baton.service.ports import WORK_ATTRIBUTE, DeadLetters, EventPublisher, WorkQueue


def publisher() -> PublisherClient:
    """A client that sends each message at once. Every publisher of Baton waits for its messages before the
    invocation ends, so the client's default batching only made each wait 10 ms longer (a lineage event per
    completion: 19 ms against 3.6 ms on the local Pub/Sub emulator)."""
    return PublisherClient(batch_settings=BatchSettings(max_latency=0.0))


def publish_within_budget(client: Any, topic: str, data: bytes, attributes: Mapping[str, str], budget: TimeBudget) -> str:
    """One publish, its retries bounded by the call deadline and each request by the request timeout."""
    retry = Retry(timeout=budget.call_deadline_s)
    future = client.publish(topic, data, retry=retry, timeout=budget.request_timeout_s, **attributes)
    return str(future.result(timeout=budget.call_deadline_s))


class PubSubEventPublisher(EventPublisher):
    def __init__(self, topic_path: str, client: PublisherClient | None = None, budget: TimeBudget | None = None) -> None:
        self.topic_path = topic_path
        self.client = client or publisher()
        self.budget = budget or TimeBudget()

    def publish(self, event: Mapping[str, Any]) -> None:
        data = json.dumps(event, sort_keys=True, default=str).encode()
        attributes = {
            "type": str(event.get("type", "")),
            "run_id": str(event.get("run_id", "")),
            "event_id": str(event.get("event_id", "")),  # delivery is at least once: consumers deduplicate by it
        }
        publish_within_budget(self.client, self.topic_path, data, attributes, self.budget)


class PubSubDeadLetters(DeadLetters):
    """The dead-letter topic that bigquery_job_completed writes to itself, with the reason in the attributes."""

    def __init__(self, topic_path: str, client: Any = None, budget: TimeBudget | None = None) -> None:
        self.topic_path = topic_path
        self.client: Any = client or publisher()
        self.budget = budget or TimeBudget()

    def put(self, data: bytes, attributes: Mapping[str, str]) -> str | None:
        try:
            message_id = publish_within_budget(self.client, self.topic_path, data, attributes, self.budget)
        except Exception as exc:  # any publishing failure: let Pub/Sub redeliver, and dead-letter it itself in the end
            raise TransientError(f"dead-letter topic {self.topic_path}: {exc}") from exc
        return message_id


class PubSubWorkQueue(WorkQueue):
    """Continuations as messages on the work topic; its push subscription invokes bigquery_job_completed."""

    def __init__(self, topic_path: str, client: PublisherClient | None = None, budget: TimeBudget | None = None) -> None:
        self.topic_path = topic_path
        self.client = client or publisher()
        self.budget = budget or TimeBudget()

    def publish(self, items: Sequence[Continuation]) -> None:
        try:
            retry = Retry(timeout=self.budget.call_deadline_s)
            futures = [
                self.client.publish(
                    self.topic_path,
                    json.dumps(item.to_json()).encode(),
                    retry=retry,
                    timeout=self.budget.request_timeout_s,
                    **{WORK_ATTRIBUTE: item.kind},
                )
                for item in items
            ]
            for future in futures:
                future.result(timeout=self.budget.call_deadline_s)
        except Exception as exc:  # any publishing failure: the caller's message is redelivered
            raise TransientError(f"work topic {self.topic_path}: {exc}") from exc


def topic_path(project: str, topic: str) -> str:
    """Accept a bare topic name or a full `projects/P/topics/T` path."""
    return topic if topic.startswith("projects/") else f"projects/{project}/topics/{topic}"
