"""Pools on the local stack: a 500-job fan-out through a pool of 10 under chaos, and freed slots reused.

Concurrency is measured from the local BigQuery's own records of each job (inserted, started, ended),
not from Baton's: a job counts from its insertion to its end, which covers its start-to-end span.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
import requests
import yaml

from baton import bootstrap
from baton.domain.records import JobStatus, RunStatus
from tests.chaos.conftest import FANOUT_POOL, FANOUT_POOL_SIZE, SOLO_POOL, ChaosStack, Scheduler, wait_until
from tests.run_watch import wait_for_run

pytestmark = pytest.mark.integration

WIDTH = 500
SEED = 20261203
DROP, DUPLICATE, DELAY = 0.03, 0.30, 0.20


def write(chaos: ChaosStack, document: dict[str, Any]) -> str:
    (chaos.manifests_dir / f"{document['name']}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return str(document["name"])


def facade_jobs(chaos: ChaosStack, run_id: str) -> list[dict[str, Any]]:
    listed = requests.get(f"{chaos.stack.bigquery.endpoint}/_facade/jobs", timeout=30).json()["jobs"]
    return [job for job in listed if job["labels"].get("baton_run") == run_id and "baton_check" not in job["labels"]]


def most_at_once(jobs: list[dict[str, Any]]) -> int:
    """The largest number of jobs BigQuery held at once, each from its insertion to its end (an end sorts first)."""
    moments: list[tuple[dt.datetime, int]] = []
    for job in jobs:
        moments += [(dt.datetime.fromisoformat(job["creationTime"]), 1), (dt.datetime.fromisoformat(job["endTime"]), -1)]
    running = most = 0
    for _, step in sorted(moments):
        running += step
        most = max(most, running)
    return most


def successes(jobs: list[dict[str, Any]]) -> Counter[str]:
    return Counter(job["labels"]["baton_job"] for job in jobs if job["state"] == "DONE" and not job["errorResult"])


def pool_state(chaos: ChaosStack, pool: str) -> tuple[int, int]:
    """(in use, queued), as `baton pools` shows it."""
    return next((usage.in_use, queued) for usage, queued in chaos.store.pool_usage() if usage.name == pool)


def entry_of(key: str) -> Callable[[Mapping[str, Any]], bool]:
    def match(entry: Mapping[str, Any]) -> bool:
        job = entry["protoPayload"]["metadata"].get("jobChange", {}).get("job", {})
        return bool(job.get("jobConfig", {}).get("labels", {}).get("baton_job") == key)

    return match


@pytest.fixture(autouse=True)
def own_chaos_rules(chaos: ChaosStack) -> Iterator[None]:
    """The delivery rules a test here adds are its own: gone afterwards, so other tests count only theirs."""
    before = len(chaos.policy.rules)
    yield
    del chaos.policy.rules[before:]


@pytest.mark.timeout(300)  # hard bound; the run itself takes about a minute
def test_a_500_job_fan_out_through_a_pool_of_10_never_has_more_than_10_in_bigquery(chaos: ChaosStack) -> None:
    keys = [f"fan_{index:03d}" for index in range(WIDTH)]
    name = write(
        chaos,
        {
            "name": "chaos_pool_fanout",
            "pool": FANOUT_POOL,
            "retry": {"max_attempts": 3, "backoff_seconds": 1},
            "jobs": [
                {"key": "root", "sql": "SELECT 1 AS one"},
                # Long enough that the pool's jobs overlap in BigQuery, short enough for a run of ~30 s.
                *(
                    {"key": key, "sql": "SELECT 1 AS one", "needs": ["root"], "labels": {"sim_duration_ms": "400"}}
                    for key in keys
                ),
            ],
        },
    )
    rng = random.Random(SEED)
    shuffled = rng.sample(keys, len(keys))
    n_drop, n_dup, n_delay = (round(WIDTH * share) for share in (DROP, DUPLICATE, DELAY))
    for key in shuffled[:n_drop]:
        chaos.policy.drop(entry_of(key))
    for key in shuffled[n_drop : n_drop + n_dup]:
        chaos.policy.duplicate(entry_of(key), copies=rng.choice((2, 3)), gap_s=rng.uniform(0.0, 1.0))
    for key in shuffled[n_drop + n_dup : n_drop + n_dup + n_delay]:
        chaos.policy.delay(entry_of(key), rng.uniform(0.2, 2.0))

    started = time.monotonic()
    with Scheduler(chaos.stack) as scheduler:
        run_id = chaos.stack.start_run(name, {})["run_id"]
        run = wait_for_run(chaos.store, run_id, 240)
        print(f"{WIDTH}-job fan-out through a pool of {FANOUT_POOL_SIZE}: {time.monotonic() - started:.1f} s")
        assert chaos.stack.bigquery.bridge.flush(timeout_s=30)  # late copies change nothing
    assert run.status == RunStatus.SUCCEEDED, Counter(job.status for job in chaos.store.list_jobs(run_id))
    assert chaos.store.get_run(run_id) == run
    jobs = facade_jobs(chaos, run_id)
    assert all(job["state"] == "DONE" for job in jobs)
    assert successes(jobs) == Counter(dict.fromkeys(["root", *keys], 1)), "exactly one successful BigQuery job per job"
    most = most_at_once(jobs)
    assert most <= FANOUT_POOL_SIZE, f"{most} jobs of a pool of {FANOUT_POOL_SIZE} in BigQuery at once"
    assert most >= FANOUT_POOL_SIZE - 2, f"only {most} at once: the pool was hardly used"
    assert pool_state(chaos, FANOUT_POOL) == (0, 0), "every slot came back"
    assert scheduler.total("healed") >= n_drop and scheduler.failures == []


def test_a_slot_freed_by_a_failure_goes_to_the_job_queued_behind_it(chaos: ChaosStack) -> None:
    name = write(
        chaos,
        {
            "name": "chaos_pool_failure",
            "pool": SOLO_POOL,
            "jobs": [{"key": "fails_first", "sql": "SELECT 1 AS one"}, {"key": "queued_second", "sql": "SELECT 2 AS two"}],
        },
    )
    chaos.stack.bigquery.facade.inject_failure(
        lambda _id, labels: labels.get("baton_job") == "fails_first", reason="invalidQuery"
    )
    run_id = chaos.stack.start_run(name, {})["run_id"]
    run = wait_for_run(chaos.store, run_id, 60)
    statuses = {job.job_key: job.status for job in chaos.store.list_jobs(run_id)}
    assert (run.status, statuses) == (RunStatus.FAILED, {"fails_first": JobStatus.FAILED, "queued_second": JobStatus.SUCCEEDED})
    jobs = facade_jobs(chaos, run_id)
    assert successes(jobs) == Counter({"queued_second": 1}) and most_at_once(jobs) == 1
    assert pool_state(chaos, SOLO_POOL) == (0, 0)


def test_a_slot_freed_by_a_cancel_goes_to_another_runs_queued_job(chaos: ChaosStack) -> None:
    slow = write(
        chaos,
        {
            "name": "chaos_pool_slow",
            "pool": SOLO_POOL,
            "jobs": [{"key": "slow", "sql": "SELECT 1 AS one", "labels": {"sim_duration_ms": "60000"}}],
        },
    )
    waiting = write(chaos, {"name": "chaos_pool_waiting", "pool": SOLO_POOL, "jobs": [{"key": "next", "sql": "SELECT 1 AS one"}]})
    holder = chaos.stack.start_run(slow, {})["run_id"]
    assert wait_until(lambda: chaos.store.list_jobs(holder)[0].status == JobStatus.SUBMITTED, 30)
    queued = chaos.stack.start_run(waiting, {})["run_id"]
    assert chaos.store.list_jobs(queued)[0].status == JobStatus.QUEUED
    assert pool_state(chaos, SOLO_POOL) == (1, 1)

    with chaos.stack.client_env():
        operator = bootstrap.build(chaos.settings())  # what `baton cancel` does
    assert operator.cancel(holder).status == RunStatus.CANCELLED
    assert wait_for_run(chaos.store, queued, 60).status == RunStatus.SUCCEEDED
    assert successes(facade_jobs(chaos, queued)) == Counter({"next": 1})
    assert successes(facade_jobs(chaos, holder)) == Counter(), "the slow job was stopped in BigQuery"
    assert pool_state(chaos, SOLO_POOL) == (0, 0)


def test_a_slot_freed_by_a_healed_lost_event_goes_to_the_job_queued_behind_it(chaos: ChaosStack) -> None:
    name = write(
        chaos,
        {
            "name": "chaos_pool_lost",
            "pool": SOLO_POOL,
            "jobs": [{"key": "lost_event", "sql": "SELECT 1 AS one"}, {"key": "behind", "sql": "SELECT 2 AS two"}],
        },
    )
    chaos.policy.drop(entry_of("lost_event"))
    run_id = chaos.stack.start_run(name, {})["run_id"]
    lost = next(job for job in chaos.store.list_jobs(run_id) if job.job_key == "lost_event")
    project = chaos.stack.topology.project
    assert chaos.stack.bigquery.facade.wait_done(project, str(lost.bigquery_job_id), timeout_s=30)
    assert {job.job_key: job.status for job in chaos.store.list_jobs(run_id)}["behind"] == JobStatus.QUEUED
    with Scheduler(chaos.stack) as scheduler:
        run = wait_for_run(chaos.store, run_id, 60)
    assert run.status == RunStatus.SUCCEEDED
    assert scheduler.total("healed") >= 1
    jobs = facade_jobs(chaos, run_id)
    assert successes(jobs) == Counter({"lost_event": 1, "behind": 1}) and most_at_once(jobs) == 1
    assert pool_state(chaos, SOLO_POOL) == (0, 0)
