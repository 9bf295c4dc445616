"""Reading the run-events topic from a chaos test, as an alerting consumer would: a pull subscription
made before the run starts (a topic keeps nothing for subscriptions made later), deduplicated by the
stable `event_id` that the outbox gives each event."""

from __future__ import annotations

import json
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from devstack import pubsub_admin
from devstack.stack import LocalStack


@dataclass
class RunEventsConsumer:
    stack: LocalStack
    subscription: str
    received: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def subscribe(cls, stack: LocalStack) -> RunEventsConsumer:
        with pubsub_admin.admin_clients(stack.pubsub.host) as (_, subscriber):
            path = pubsub_admin.ensure_pull_subscription(
                subscriber,
                stack.topology.project,
                topic=stack.topology.run_events_topic,
                name=f"chaos-run-events-{secrets.token_hex(4)}",
            )
        return cls(stack, path)

    def drain(self) -> None:
        """Everything waiting now (acknowledged), until one pull comes back empty."""
        while batch := pubsub_admin.pull(self.stack.pubsub.host, self.subscription, max_messages=100, timeout=1.0):
            for message in batch:
                event = json.loads(message.message.data)
                assert message.message.attributes.get("event_id") == event["event_id"], "the attribute and the body agree"
                self.received.append(event)

    def of(self, run_id: str) -> list[dict[str, Any]]:
        return [event for event in self.received if event["run_id"] == run_id]

    def wait_for(self, run_id: str, event_type: str, timeout_s: float) -> bool:
        """Drains until `event_type` of the run has arrived (the reconciler may publish it from the outbox)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.drain()
            if any(event["type"] == event_type for event in self.of(run_id)):
                return True
        return False

    def distinct(self, run_id: str) -> dict[str, dict[str, Any]]:
        """One event per event_id: delivery is at least once, so copies are allowed and folded here."""
        events: dict[str, dict[str, Any]] = {}
        for event in self.of(run_id):
            events.setdefault(event["event_id"], event)
        return events

    def types(self, run_id: str) -> Counter[str]:
        return Counter(event["type"] for event in self.distinct(run_id).values())
