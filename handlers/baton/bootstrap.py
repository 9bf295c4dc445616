"""Composition root: the one place that builds real adapters from settings.

Built lazily and once per process, so a cold start pays for the clients only
when the first request needs them.
"""

from __future__ import annotations

import functools

from baton.config import Settings
from baton.manifest import ManifestRepository
from baton.orchestrator import Orchestrator
from baton.ports import EventPublisher, NoEventPublisher


def build(settings: Settings) -> Orchestrator:
    from baton.bigquery_submitter import BigQuerySubmitter
    from baton.spanner_store import SpannerRunStore

    events: EventPublisher = NoEventPublisher()
    if settings.run_events_topic:
        from baton.pubsub_publisher import PubSubEventPublisher, topic_path

        events = PubSubEventPublisher(topic_path(settings.project, settings.run_events_topic))
    return Orchestrator(
        store=SpannerRunStore.connect(settings.project, settings.spanner_instance, settings.spanner_database),
        submitter=BigQuerySubmitter.connect(settings.project, settings.bigquery_location, settings.bigquery_endpoint),
        manifests=ManifestRepository(settings.manifests_dir),
        environment=settings.environment,
        events=events,
    )


@functools.cache
def settings() -> Settings:
    return Settings.from_env()


@functools.cache
def orchestrator() -> Orchestrator:
    return build(settings())
