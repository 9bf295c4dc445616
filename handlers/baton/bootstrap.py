"""Composition root: the one place that builds real adapters from settings.

Built lazily and once per process, so a cold start pays for the clients only
when the first request needs them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from baton.config import Settings
from baton.domain.records import Continuation
from baton.domain.timing import TimeBudget
from baton.manifests.loading import ManifestRepository
from baton.service.orchestrator import Orchestrator
from baton.service.ports import (
    DeadLetters,
    EventPublisher,
    LineageEmitter,
    NoDeadLetters,
    NoEventPublisher,
    NoLineage,
    WorkQueue,
)


class _PublisherOnFirstEvent(EventPublisher):
    """The run-events publisher, built when the first event is published.

    Most completions publish nothing (only failures and finished runs do), so a new
    instance answering its first completion does not import google-cloud-pubsub:
    50-80 ms of its cold start (benchmarks/cold_start.py measures it).
    """

    def __init__(self, project: str, topic: str, budget: TimeBudget) -> None:
        self.project = project
        self.topic = topic
        self.budget = budget
        self._publisher: EventPublisher | None = None

    def publish(self, event: Mapping[str, Any]) -> None:
        if self._publisher is None:
            from baton.adapters.pubsub import PubSubEventPublisher, topic_path

            self._publisher = PubSubEventPublisher(topic_path(self.project, self.topic), budget=self.budget)
        self._publisher.publish(event)


class _WorkQueueOnFirstUse(WorkQueue):
    """The continuations topic, built on first use: only wide releases and skips hand work on."""

    def __init__(self, project: str, topic: str, budget: TimeBudget) -> None:
        self.project = project
        self.topic = topic
        self.budget = budget
        self._queue: WorkQueue | None = None

    def publish(self, items: Sequence[Continuation]) -> None:
        if self._queue is None:
            from baton.adapters.pubsub import PubSubWorkQueue, topic_path

            self._queue = PubSubWorkQueue(topic_path(self.project, self.topic), budget=self.budget)
        self._queue.publish(items)


def build(settings: Settings) -> Orchestrator:
    from baton.adapters.bigquery import BigQuerySubmitter
    from baton.adapters.spanner_store import SpannerRunStore

    lineage: LineageEmitter = NoLineage()
    if settings.lineage_file or settings.lineage_topic:
        from baton.adapters.openlineage import OpenLineageEmitter  # imports the client itself only on first emit

        if settings.lineage_file:
            lineage = OpenLineageEmitter(settings.project, file_path=settings.lineage_file)
        else:
            lineage = OpenLineageEmitter(settings.project, topic=settings.lineage_topic, budget=settings.budget)
    events: EventPublisher = NoEventPublisher()
    if settings.run_events_topic:
        events = _PublisherOnFirstEvent(settings.project, settings.run_events_topic, settings.budget)
    return Orchestrator(
        store=SpannerRunStore.connect(
            settings.project,
            settings.spanner_instance,
            settings.spanner_database,
            settings.mutation_budget,
            settings.budget,
            settings.pools,
        ),
        submitter=BigQuerySubmitter.connect(
            settings.project, settings.bigquery_location, settings.bigquery_endpoint, settings.budget
        ),
        manifests=ManifestRepository(settings.manifests_dir, settings.datasets, settings.pools),
        environment=settings.environment,
        events=events,
        work=_WorkQueueOnFirstUse(settings.project, settings.work_topic, settings.budget) if settings.work_topic else None,
        scratch_dataset=settings.scratch_dataset,
        pricing=settings.pricing,
        lineage=lineage,
    )


@functools.cache
def settings() -> Settings:
    return Settings.from_env()


@functools.cache
def orchestrator() -> Orchestrator:
    return build(settings())


@functools.cache
def dead_letters() -> DeadLetters:
    """The dead-letter topic bigquery_job_completed writes undecodable and given-up messages to, with the reason."""
    current = settings()
    if not current.dead_letter_topic:
        return NoDeadLetters()
    from baton.adapters.pubsub import PubSubDeadLetters, topic_path

    return PubSubDeadLetters(topic_path(current.project, current.dead_letter_topic), budget=current.budget)
