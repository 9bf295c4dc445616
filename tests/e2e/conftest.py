"""The whole local stack, once per session: emulators, local BigQuery, handlers under functions-framework."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from baton.adapters.spanner_store import SpannerRunStore
from devstack.stack import LocalStack, LocalStackOptions

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def local_stack(synth_dir: Path) -> Iterator[LocalStack]:
    options = LocalStackOptions(work_dir=REPO / ".devstack" / f"e2e-{os.getpid()}", job_duration_s=0.2, synth_dir=synth_dir)
    with LocalStack.start(options) as stack:
        yield stack


@pytest.fixture(scope="session")
def run_store(local_stack: LocalStack) -> SpannerRunStore:
    return SpannerRunStore(local_stack.database())


def rows(stack: LocalStack, sql: str) -> list[dict[str, Any]]:
    return [dict(row.items()) for row in stack.bigquery_client().query(sql).result()]
