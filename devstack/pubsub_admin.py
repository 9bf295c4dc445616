"""Topics and subscriptions on the Pub/Sub emulator, shaped like the deployed ones.

The deployed topology (topic names, the push subscription's ack deadline, backoff and dead-letter policy)
comes from the synthesized Terraform JSON; the caller reads it and passes plain values here, so this module
restates nothing. Every call is idempotent: what already exists is kept as it is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from google.api_core.exceptions import AlreadyExists, DeadlineExceeded
from google.protobuf.duration_pb2 import Duration
from google.pubsub_v1 import PublisherClient, PubsubMessage, ReceivedMessage, SubscriberClient, Subscription

from devstack.emulators import emulator_env, pubsub_emulator_env


@dataclass(frozen=True)
class PushSubscriptionSpec:
    """The delivery policy of a push subscription, as the platform stack declares it."""

    name: str
    push_endpoint: str
    ack_deadline_seconds: int = 60
    min_backoff_seconds: float = 10.0
    max_backoff_seconds: float = 600.0
    max_delivery_attempts: int = 5


@dataclass(frozen=True)
class PubSubTopology:
    """Full resource paths of what :func:`provision_pubsub` made."""

    completion_topic: str
    dead_letter_topic: str
    run_events_topic: str
    push_subscription: str
    dead_letter_subscription: str


def topic_path(project: str, topic: str) -> str:
    """``projects/P/topics/T``; a value that is already a path is returned as it is."""
    return topic if topic.startswith("projects/") else f"projects/{project}/topics/{topic}"


def subscription_path(project: str, subscription: str) -> str:
    """``projects/P/subscriptions/S``; a value that is already a path is returned as it is."""
    return subscription if subscription.startswith("projects/") else f"projects/{project}/subscriptions/{subscription}"


@contextlib.contextmanager
def admin_clients(host: str) -> Iterator[tuple[PublisherClient, SubscriberClient]]:
    """Publisher and subscriber clients bound to the emulator at ``host`` (insecure channel, no credentials).

    The clients read PUBSUB_EMULATOR_HOST when built, so it is set only around their construction.
    """
    with emulator_env(pubsub_emulator_env(host)):
        publisher = PublisherClient()
        subscriber = SubscriberClient()
    with publisher, subscriber:
        yield publisher, subscriber


def _seconds(value: float) -> Duration:
    duration = Duration()
    duration.FromNanoseconds(round(value * 1e9))
    return duration


def ensure_topic(publisher: PublisherClient, project: str, topic: str) -> str:
    path = topic_path(project, topic)
    with contextlib.suppress(AlreadyExists):
        publisher.create_topic(name=path)
    return path


def ensure_push_subscription(
    subscriber: SubscriberClient, project: str, *, topic: str, spec: PushSubscriptionSpec, dead_letter_topic: str
) -> str:
    """A push subscription with the deployed ack deadline, exponential backoff and dead-letter policy."""
    path = subscription_path(project, spec.name)
    subscription = Subscription(
        name=path,
        topic=topic_path(project, topic),
        push_config={"push_endpoint": spec.push_endpoint},
        ack_deadline_seconds=spec.ack_deadline_seconds,
        retry_policy={
            "minimum_backoff": _seconds(spec.min_backoff_seconds),
            "maximum_backoff": _seconds(spec.max_backoff_seconds),
        },
        dead_letter_policy={
            "dead_letter_topic": topic_path(project, dead_letter_topic),
            "max_delivery_attempts": spec.max_delivery_attempts,
        },
    )
    with contextlib.suppress(AlreadyExists):
        subscriber.create_subscription(request=subscription)
    return path


def ensure_pull_subscription(
    subscriber: SubscriberClient, project: str, *, topic: str, name: str, ack_deadline_seconds: int = 10
) -> str:
    path = subscription_path(project, name)
    with contextlib.suppress(AlreadyExists):
        subscriber.create_subscription(
            request=Subscription(name=path, topic=topic_path(project, topic), ack_deadline_seconds=ack_deadline_seconds)
        )
    return path


def provision_pubsub(
    host: str,
    project: str,
    *,
    completion_topic: str,
    dead_letter_topic: str,
    run_events_topic: str,
    push_subscription: PushSubscriptionSpec,
    dead_letter_subscription: str | None = None,
    work_topic: str | None = None,
    work_subscription: PushSubscriptionSpec | None = None,
) -> PubSubTopology:
    """Create Baton's topics, the push subscriptions that feed ``bigquery_job_completed`` (completions and, with
    ``work_topic``, continuations), and a pull
    subscription on the dead-letter topic (default name ``<dead_letter_topic>-pull``) so dead letters can be
    read; a dead-letter topic without a subscription would drop them.
    """
    dead_letter_name = dead_letter_subscription or f"{dead_letter_topic.rsplit('/', 1)[-1]}-pull"
    with admin_clients(host) as (publisher, subscriber):
        topics = [ensure_topic(publisher, project, t) for t in (completion_topic, dead_letter_topic, run_events_topic)]
        # The dead-letter subscription comes first: messages dead-lettered before it exists would be lost.
        dead_letters = ensure_pull_subscription(subscriber, project, topic=dead_letter_topic, name=dead_letter_name)
        push = ensure_push_subscription(
            subscriber, project, topic=completion_topic, spec=push_subscription, dead_letter_topic=dead_letter_topic
        )
        if work_topic is not None and work_subscription is not None:
            ensure_topic(publisher, project, work_topic)
            ensure_push_subscription(
                subscriber, project, topic=work_topic, spec=work_subscription, dead_letter_topic=dead_letter_topic
            )
    return PubSubTopology(
        completion_topic=topics[0],
        dead_letter_topic=topics[1],
        run_events_topic=topics[2],
        push_subscription=push,
        dead_letter_subscription=dead_letters,
    )


def publish(host: str, topic: str, data: bytes, attributes: Mapping[str, str] | None = None) -> str:
    """Publish one message synchronously to ``topic`` (a full path); returns its message ID."""
    with admin_clients(host) as (publisher, _):
        response = publisher.publish(topic=topic, messages=[PubsubMessage(data=data, attributes=dict(attributes or {}))])
    return str(response.message_ids[0])


def pull(
    host: str, subscription: str, *, max_messages: int = 100, ack: bool = True, timeout: float = 5.0
) -> Sequence[ReceivedMessage]:
    """Messages waiting on a pull ``subscription`` (a full path), acknowledged unless ``ack`` is False.

    Returns an empty list when nothing arrives within ``timeout``.
    """
    with admin_clients(host) as (_, subscriber):
        try:
            response = subscriber.pull(subscription=subscription, max_messages=max_messages, timeout=timeout)
        except DeadlineExceeded:
            return []
        received = list(response.received_messages)
        if ack and received:
            subscriber.acknowledge(subscription=subscription, ack_ids=[m.ack_id for m in received])
    return received
