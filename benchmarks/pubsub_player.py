"""Pub/Sub's part, played for the in-process handlers: push, redeliver after backoff, carry continuations.

A push answered with anything but 2xx is redelivered after the subscription's
backoff (read from the synthesized stack), with `deliveryAttempt` counting up as
Pub/Sub's dead-letter policy does, so a 503 under contention costs what it costs
in the cloud (at least the minimum backoff) instead of stopping the benchmark.
Continuations the handlers publish go to a work topic of the benchmark's own on
the emulator; the player pulls them from a pull subscription and posts each back
to the same handler app as a push body with its attributes, as the work topic's
push subscription would. Every invocation is timed: the longest must stay far
below the function's 120 s timeout.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import secrets
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.cloud.pubsub_v1 import SubscriberClient

from devstack.topology import PushSubscription

SUCCESS = frozenset({102, 200, 201, 202, 204})  # what Pub/Sub takes as an acknowledgement
PULL_WAIT_S = 30.0  # a published continuation not pullable by then is lost: the benchmark stops


def backoff_s(policy: PushSubscription, attempt: int) -> float:
    """Pub/Sub's exponential backoff before delivery `attempt + 1`: from the minimum, doubling, up to the maximum."""
    return float(min(policy.max_backoff_seconds, policy.min_backoff_seconds * 2 ** max(0, attempt - 1)))


def push_message(
    data: bytes, attributes: Mapping[str, str], subscription: str, attempt: int = 1, message_id: str | None = None
) -> bytes:
    """A push request body for one message, as a push subscription with a dead-letter policy sends it."""
    message = {
        "data": base64.b64encode(data).decode(),
        "messageId": message_id or secrets.token_hex(8),
        "publishTime": dt.datetime.now(dt.UTC).isoformat(),
        "attributes": dict(attributes),
    }
    return json.dumps({"message": message, "subscription": subscription, "deliveryAttempt": attempt}).encode()


def with_attempt(body: bytes, attempt: int) -> bytes:
    """The same push body, redelivered: Pub/Sub counts the attempt up."""
    document = json.loads(body)
    document["deliveryAttempt"] = attempt
    return json.dumps(document).encode()


@dataclass
class Deliveries:
    """What the player delivered: invocations (first deliveries and redeliveries), statuses, the longest one."""

    invocations: int = 0
    redeliveries: int = 0
    continuations: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    seconds: list[float] = field(default_factory=list)
    longest_s: float = 0.0
    longest: str = ""

    def note(self, seconds: float, status: int, what: str) -> None:
        self.invocations += 1
        self.statuses[status] += 1
        self.seconds.append(seconds)
        if seconds > self.longest_s:
            self.longest_s, self.longest = seconds, what

    def to_json(self) -> dict[str, Any]:
        return {
            "invocations": self.invocations,
            "redeliveries": self.redeliveries,
            "continuations": self.continuations,
            "statuses": {str(status): count for status, count in sorted(self.statuses.items())},
            "handler_s": round(sum(self.seconds), 3),
            "longest_invocation_s": round(self.longest_s, 3),
            "longest_invocation": self.longest,
        }


class PubSubPlayer:
    """Delivers push bodies to one handler app as Pub/Sub would, one at a time, and carries continuations."""

    def __init__(
        self,
        client: Any,
        policy: PushSubscription,
        work_subscription: str,
        published: Callable[[], int],
        emulator_host: str,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.policy = policy
        self.work_subscription = work_subscription
        self.published = published  # continuations the handlers have published so far
        self.pulled = published()
        self.sleep = sleep
        self.log = Deliveries()
        saved = os.environ.get("PUBSUB_EMULATOR_HOST")
        os.environ["PUBSUB_EMULATOR_HOST"] = emulator_host
        try:
            self.subscriber = SubscriberClient()
        finally:
            if saved is None:
                os.environ.pop("PUBSUB_EMULATOR_HOST", None)
            else:
                os.environ["PUBSUB_EMULATOR_HOST"] = saved

    def deliver(self, body: bytes, what: str) -> dict[str, Any]:
        """Push until acknowledged; each refusal waits out the backoff. Past the last attempt, the message is gone."""
        attempt = 1
        while True:
            started = time.perf_counter()
            response = self.client.post("/", data=body, content_type="application/json")
            self.log.note(time.perf_counter() - started, response.status_code, what)
            answer: dict[str, Any] = response.get_json(silent=True) or {}
            if response.status_code in SUCCESS:
                return answer
            if attempt >= self.policy.max_delivery_attempts:
                raise RuntimeError(f"{what}: refused {attempt} times, the last with {response.status_code}: {answer}")
            self.log.redeliveries += 1
            self.sleep(backoff_s(self.policy, attempt))
            attempt += 1
            body = with_attempt(body, attempt)

    def deliver_all(self, body: bytes, what: str) -> dict[str, Any]:
        """Deliver one event, then every continuation it caused (and theirs), as their push subscription would."""
        answer = self.deliver(body, what)
        self.drain()
        return answer

    def drain(self) -> int:
        """Carry out every continuation published so far, and those they publish; returns how many."""
        done = 0
        deadline = time.monotonic() + PULL_WAIT_S
        while self.pulled < self.published():
            response = self.subscriber.pull(
                request={"subscription": self.work_subscription, "max_messages": 100, "return_immediately": True},
                timeout=PULL_WAIT_S,
            )
            received = list(response.received_messages)
            if not received:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.published() - self.pulled} published continuation(s) never arrived")
                self.sleep(0.01)
                continue
            for item in received:
                message = item.message
                body = push_message(message.data, dict(message.attributes), self.work_subscription, 1, message.message_id)
                self.deliver(body, f"continuation {message.attributes.get('baton_work', '?')}")
                self.subscriber.acknowledge(request={"subscription": self.work_subscription, "ack_ids": [item.ack_id]})
                self.pulled += 1
                self.log.continuations += 1
                done += 1
            deadline = time.monotonic() + PULL_WAIT_S
        return done

    def close(self) -> None:
        self.subscriber.close()
