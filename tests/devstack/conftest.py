"""The local BigQuery for tests: one bqemulator engine per session, one façade with a capturing sink."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from devstack.audit_bridge import entry_job_id
from devstack.bigquery_engine import BigQueryEngine
from devstack.bigquery_facade import LocalBigQuery

SINK_FILTER = (
    'resource.type="bigquery_project" AND '
    'protoPayload.metadata."@type"="type.googleapis.com/google.cloud.audit.BigQueryAuditMetadata" AND '
    'protoPayload.metadata.jobChange.after="DONE" AND '
    'protoPayload.metadata.jobChange.job.jobConfig.labels.baton_env="dev"'
)


class CapturingPublisher:
    """Stands in for the Pub/Sub topic: keeps every published LogEntry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[dict[str, Any]] = []

    def __call__(self, entry: Mapping[str, Any]) -> None:
        with self._lock:
            self.entries.append(dict(entry))

    def for_job(self, job_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [entry for entry in self.entries if entry_job_id(entry) == job_id]


@pytest.fixture(scope="session")
def bigquery_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigQueryEngine]:
    engine = BigQueryEngine.start(Path(tmp_path_factory.mktemp("bigquery-engine")))
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="session")
def published() -> CapturingPublisher:
    return CapturingPublisher()


@pytest.fixture(scope="session")
def local_bigquery(
    bigquery_engine: BigQueryEngine, published: CapturingPublisher, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalBigQuery]:
    local = LocalBigQuery.start(
        tmp_path_factory.mktemp("bigquery-facade"),
        SINK_FILTER,
        published,
        default_duration_s=0.2,
        engine_endpoint=bigquery_engine.endpoint,
    )
    try:
        yield local
    finally:
        local.stop()
