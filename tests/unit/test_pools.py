"""Pools: the slot rules of domain/transitions/pools.py through the orchestrator, with the in-memory fakes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from baton.domain.naming import bigquery_job_id
from baton.domain.records import Completion, JobError, JobStatus, RunStatus
from baton.domain.timing import ReconcilePolicy
from baton.errors import ManifestInvalid
from baton.manifests.loading import ManifestRepository, parse_manifest
from baton.service.orchestrator import Orchestrator
from tests.fakes import InMemoryRunStore, RecordingSubmitter

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(milliseconds=1)  # every transition at its own time, as in life
        return self.now


class World:
    def __init__(self, tmp_path: Path, *manifests: dict[str, Any], pools: dict[str, int] | None = None) -> None:
        for manifest in manifests:
            (tmp_path / f"{manifest['name']}.yaml").write_text(yaml.safe_dump(manifest))
        sizes = {"p": 2} if pools is None else pools
        self.store = InMemoryRunStore(pool_sizes=sizes)
        self.submitter = RecordingSubmitter()
        self.clock = Clock()
        self.orchestrator = Orchestrator(
            self.store, self.submitter, ManifestRepository(tmp_path, pools=sizes), "test", clock=self.clock
        )
        self.most_running = 0

    def start(self, name: str = "m") -> str:
        run_id = self.orchestrator.start(name, {}).run_id
        self._measure()
        return run_id

    def status(self, run_id: str, key: str) -> JobStatus:
        return self.store.jobs[(run_id, key)].status

    def finish(self, run_id: str, key: str, error: str | None = None) -> None:
        attempt = self.store.jobs[(run_id, key)].attempt
        self.orchestrator.complete(
            Completion(
                run_id, key, attempt, bigquery_job_id("test", run_id, key, attempt), error=JobError(error, "x") if error else None
            )
        )
        self._measure()

    def in_pool(self, status: JobStatus, pool: str = "p") -> list[str]:
        return sorted(key for (_, key), job in self.store.jobs.items() if job.spec.pool == pool and job.status == status)

    def usage(self, pool: str = "p") -> tuple[int, int]:
        """(in use, queued) as `baton pools` shows them."""
        return next((usage.in_use, queued) for usage, queued in self.store.pool_usage() if usage.name == pool)

    def _measure(self) -> None:
        held = [
            job
            for job in self.store.jobs.values()
            if job.spec.pool == "p" and job.status in (JobStatus.READY, JobStatus.SUBMITTED)
        ]
        self.most_running = max(self.most_running, len(held))


def fan_out(width: int, **job: Any) -> dict[str, Any]:
    """A root outside any pool, then `width` jobs of pool p, then a sink outside it."""
    wide = [{"key": f"w{i:02d}", "sql": "SELECT 1", "needs": ["root"], "pool": "p", **job} for i in range(width)]
    return {
        "name": "m",
        "jobs": [
            {"key": "root", "sql": "SELECT 1"},
            *wide,
            {"key": "sink", "sql": "SELECT 1", "needs": [j["key"] for j in wide]},
        ],
    }


def test_a_full_pool_queues_jobs_and_each_completion_hands_its_slot_to_the_next(tmp_path: Path) -> None:
    world = World(tmp_path, fan_out(6))
    run_id = world.start()
    world.finish(run_id, "root")
    assert world.in_pool(JobStatus.SUBMITTED) == ["w00", "w01"]
    assert world.in_pool(JobStatus.QUEUED) == ["w02", "w03", "w04", "w05"]
    assert world.usage() == (2, 4)
    for index in range(6):
        world.finish(run_id, f"w{index:02d}")
    assert world.submitter.submitted_keys() == ["root", *[f"w{i:02d}" for i in range(6)], "sink"]
    world.finish(run_id, "sink")
    assert world.store.runs[run_id].status == RunStatus.SUCCEEDED
    assert world.most_running == 2
    assert world.usage() == (0, 0)


def test_queued_jobs_go_by_priority_then_age_across_runs(tmp_path: Path) -> None:
    low = {"name": "low", "pool": "p", "jobs": [{"key": f"l{i}", "sql": "SELECT 1"} for i in range(3)]}
    high = {"name": "high", "pool": "p", "priority": 5, "jobs": [{"key": "h0", "sql": "SELECT 1"}]}
    world = World(tmp_path, low, high)
    first = world.start("low")
    assert world.in_pool(JobStatus.SUBMITTED) == ["l0", "l1"] and world.in_pool(JobStatus.QUEUED) == ["l2"]
    second = world.start("high")
    assert world.status(second, "h0") == JobStatus.QUEUED
    world.finish(first, "l1")
    assert world.status(second, "h0") == JobStatus.SUBMITTED, "the higher priority goes first, though younger"
    assert world.status(first, "l2") == JobStatus.QUEUED
    world.finish(first, "l0")
    assert world.status(first, "l2") == JobStatus.SUBMITTED
    assert world.most_running == 2


def test_a_failure_frees_its_slot_and_a_retry_delay_keeps_it(tmp_path: Path) -> None:
    world = World(tmp_path, fan_out(3, retry={"max_attempts": 2, "backoff_seconds": 60}))
    run_id = world.start()
    world.finish(run_id, "root")
    world.finish(run_id, "w00", error="backendError")  # retryable: READY again after a delay, holding its slot
    assert world.status(run_id, "w00") == JobStatus.READY
    assert world.status(run_id, "w02") == JobStatus.QUEUED and world.usage() == (2, 1)
    world.finish(run_id, "w01", error="invalidQuery")  # final: the slot goes to w02
    assert world.status(run_id, "w01") == JobStatus.FAILED
    assert world.status(run_id, "w02") == JobStatus.SUBMITTED and world.usage() == (2, 0)
    assert world.most_running == 2


def test_a_job_starting_its_checks_frees_its_slot(tmp_path: Path) -> None:
    checked = fan_out(2, checks=[{"name": "rows", "sql_returns_no_rows": "SELECT 1 FROM (SELECT 1) WHERE FALSE"}])
    world = World(tmp_path, checked, pools={"p": 1})
    run_id = world.start()
    world.finish(run_id, "root")
    world.finish(run_id, "w00")
    assert world.status(run_id, "w00") == JobStatus.CHECKING
    assert world.status(run_id, "w01") == JobStatus.SUBMITTED and world.usage("p") == (1, 0)


def test_cancelling_a_run_hands_its_slots_to_another_runs_queue_and_empties_its_own(tmp_path: Path) -> None:
    first = {"name": "first", "pool": "p", "jobs": [{"key": f"a{i}", "sql": "SELECT 1"} for i in range(3)]}
    second = {"name": "second", "pool": "p", "jobs": [{"key": f"b{i}", "sql": "SELECT 1"} for i in range(2)]}
    world = World(tmp_path, first, second)
    one = world.start("first")
    two = world.start("second")
    assert world.usage() == (2, 3)
    world.orchestrator.cancel(one)
    assert [world.status(one, f"a{i}") for i in range(3)] == [JobStatus.CANCELLED] * 3
    assert [world.status(two, f"b{i}") for i in range(2)] == [JobStatus.SUBMITTED] * 2
    assert world.usage() == (2, 0), "the cancelled QUEUED job left the queue"
    assert world.most_running == 2


def test_the_unpooled_completion_reads_nothing_more_with_pools_configured(tmp_path: Path) -> None:
    manifest = {"name": "m", "jobs": [{"key": "a", "sql": "SELECT 1"}, {"key": "b", "sql": "SELECT 1", "needs": ["a"]}]}
    reads = []
    for pools in ({}, {"p": 2}):
        folder = tmp_path / f"pools{len(pools)}"
        folder.mkdir()
        world = World(folder, manifest, pools=pools)
        run_id = world.start()
        world.finish(run_id, "a")
        reads.append(world.store.last_reads)
        assert world.store.pools_in_use == {} and world.store.queue == {}
    assert reads[0] == reads[1]


def test_the_reconciler_requeues_a_job_a_crash_left_out_and_fills_free_slots(tmp_path: Path) -> None:
    world = World(tmp_path, {"name": "m", "pool": "p", "jobs": [{"key": f"j{i}", "sql": "SELECT 1"} for i in range(4)]})
    run_id = world.start()
    assert world.usage() == (2, 2)
    world.store.queue.clear()  # as if the starter had died before writing the queue entries
    world.store.pool_sizes["p"] = 3  # and the environment's pool grew meanwhile
    world.clock.now += dt.timedelta(minutes=10)
    report = world.orchestrator.reconcile(ReconcilePolicy())
    assert report.requeued == 2
    assert world.in_pool(JobStatus.SUBMITTED) == ["j0", "j1", "j2"] and world.usage() == (3, 1)
    world.finish(run_id, "j0")
    assert world.status(run_id, "j3") == JobStatus.SUBMITTED


def test_a_manifest_names_pools_the_environment_configures_and_sets_priorities(tmp_path: Path) -> None:
    data = {
        "name": "m",
        "pool": "heavy",
        "priority": 3,
        "jobs": [{"key": "a", "sql": "SELECT 1"}, {"key": "b", "sql": "SELECT 1", "pool": "bigquery", "priority": -1}],
    }
    manifest = parse_manifest(data, "m.yaml", tmp_path, pools={"heavy": 4, "bigquery": 100})
    assert [(job.pool, job.priority) for job in manifest.jobs] == [("heavy", 3), ("bigquery", -1)]
    with pytest.raises(ManifestInvalid, match="pool 'nightly' is not one of the environment's pools \\(bigquery, heavy\\)"):
        parse_manifest({**data, "pool": "nightly"}, "m.yaml", tmp_path, pools={"heavy": 4, "bigquery": 100})
    with pytest.raises(ManifestInvalid, match="pool 'heavy' is not one of the environment's pools \\(none\\)"):
        parse_manifest(data, "m.yaml", tmp_path, pools={})
    unpooled = parse_manifest({"name": "m", "jobs": [{"key": "a", "sql": "SELECT 1"}]}, "m.yaml", tmp_path, pools={})
    assert (
        unpooled.jobs[0].to_json()
        == parse_manifest({"name": "m", "jobs": [{"key": "a", "sql": "SELECT 1"}]}, "m.yaml", tmp_path).jobs[0].to_json()
    )
    assert "pool" not in unpooled.jobs[0].to_json(), "a job without a pool keeps its manifest version"


def test_the_reconciler_recounts_a_full_pool_whose_slot_leaked(tmp_path: Path) -> None:
    world = World(tmp_path, fan_out(4), pools={"p": 1})
    run_id = world.start()
    world.finish(run_id, "root")
    assert world.usage() == (1, 3)
    assert world.orchestrator.reconcile(ReconcilePolicy()).pools_recounted == 0, "a full pool whose count is right"
    world.store.pools_in_use["p"] += 1  # a slot leaked (a bug, a hand-edited row): w00's end leaves the pool full
    world.finish(run_id, "w00")
    assert world.usage() == (1, 3) and world.in_pool(JobStatus.SUBMITTED) == [], "the queue waits on the leaked slot"

    report = world.orchestrator.reconcile(ReconcilePolicy())
    assert (report.pools_recounted, report.pool_released) == (1, 1)
    assert world.in_pool(JobStatus.SUBMITTED) == ["w01"] and world.usage() == (1, 2)
    for key in ("w01", "w02", "w03"):
        world.finish(run_id, key)
    assert world.usage() == (0, 0) and world.most_running == 1


def test_a_recount_that_fails_does_not_keep_free_slots_from_the_queues(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = {"name": "n", "pool": "q", "jobs": [{"key": f"x{i}", "sql": "SELECT 1"} for i in range(2)]}
    world = World(tmp_path, fan_out(3), other, pools={"p": 1, "q": 1})
    run_id = world.start()
    world.finish(run_id, "root")  # p is full, with w01 and w02 queued: the pass recounts it
    queued = world.start("n")
    world.store.pool_sizes["q"] = 2  # q has a free slot for x1, which the same pass hands on

    def unreadable(pools: Any) -> Any:
        raise RuntimeError("the count cannot be read")

    monkeypatch.setattr(world.store, "pool_drift", unreadable)
    report = world.orchestrator.reconcile(ReconcilePolicy())
    assert (report.errors, report.pools_recounted, report.pool_released) == (1, 0, 1)
    assert world.status(queued, "x1") == JobStatus.SUBMITTED
