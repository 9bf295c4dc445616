"""The reconciler's work list pages through OpenRunJobs without losing or repeating rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from baton.adapters.spanner_store import SpannerRunStore
from baton.domain.records import JobStatus
from baton.manifests.loading import ManifestRepository
from baton.service.orchestrator import Orchestrator
from tests.fakes import RecordingSubmitter

pytestmark = pytest.mark.integration


def test_pages_cover_every_open_job_once_in_index_order(spanner_database: Any, tmp_path: Path) -> None:
    jobs = [{"key": f"j{i:02d}", "sql": "SELECT 1"} for i in range(23)]
    (tmp_path / "wide.yaml").write_text(yaml.safe_dump({"name": "wide", "concurrency": "allow", "jobs": jobs}))
    store = SpannerRunStore(spanner_database)
    orchestrator = Orchestrator(store, RecordingSubmitter(), ManifestRepository(tmp_path), "dev")
    runs = {orchestrator.start("wide", {}).run_id for _ in range(2)}  # 46 SUBMITTED jobs, in a few commits

    seen: list[tuple[str, str]] = []
    token: str | None = None
    pages = 0
    while True:
        page, token = store.jobs_page(JobStatus.SUBMITTED, 10, token)
        pages += 1
        seen += [(job.run_id, job.job_key) for job in page]
        if token is None:
            break

    assert pages == 5
    assert len(seen) == len(set(seen)) == 46
    assert {run_id for run_id, _ in seen} == runs
    assert store.jobs_page(JobStatus.READY, 10) == ([], None)
    first, _ = store.jobs_page(JobStatus.SUBMITTED, 10)
    assert [(j.run_id, j.job_key) for j in first] == seen[:10]


def test_pages_leave_out_the_jobs_of_queued_runs(spanner_database: Any, tmp_path: Path) -> None:
    """A queued run's roots wait READY for its start: a long queue must not fill the reconciler's pages."""
    jobs = [{"key": "a", "sql": "SELECT 1"}, {"key": "b", "sql": "SELECT 2", "needs": ["a"]}]
    (tmp_path / "one.yaml").write_text(yaml.safe_dump({"name": "one", "concurrency": "queue", "jobs": jobs}))
    store = SpannerRunStore(spanner_database)
    orchestrator = Orchestrator(store, RecordingSubmitter(), ManifestRepository(tmp_path), "dev")
    running = orchestrator.start("one", {}).run_id
    queued = [orchestrator.start("one", {}).run_id for _ in range(3)]
    assert {job.status for run_id in queued for job in store.list_jobs(run_id) if job.job_key == "a"} == {JobStatus.READY}
    assert store.jobs_page(JobStatus.READY, 10) == ([], None)
    assert store.jobs_in_status(JobStatus.READY, 10) == []
    assert [(job.run_id, job.job_key) for job in store.jobs_page(JobStatus.SUBMITTED, 10)[0]] == [(running, "a")]
