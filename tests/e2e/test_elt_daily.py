"""The example manifest end to end on the local stack, every step triggered by a completion event."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from baton.adapters.spanner_store import SpannerRunStore
from baton.domain.records import JobStatus, RunStatus
from devstack.stack import LocalStack
from tests.e2e.conftest import rows
from tests.run_watch import wait_for_run

pytestmark = pytest.mark.integration
RUN_DATE = "2026-11-27"


def baton_jobs_of(stack: LocalStack, run_id: str) -> Counter[str]:
    """How many BigQuery jobs ran per manifest job, from the DONE entries the audit log recorded."""
    stack.bigquery.bridge.flush()
    done = Counter[str]()
    for entry in stack.bigquery.bridge.entries:
        change = entry["protoPayload"]["metadata"].get("jobChange", {})
        labels = change.get("job", {}).get("jobConfig", {}).get("labels", {})
        if change.get("after") == "DONE" and labels.get("baton_run") == run_id:
            done[labels["baton_job"]] += 1
    return done


def bigquery_times(stack: LocalStack, run_id: str) -> tuple[dict[str, dt.datetime], dict[str, dt.datetime]]:
    """Per job of the run: when BigQuery created it and when it ended, from its DONE audit entry."""
    created, ended = {}, {}
    for entry in stack.bigquery.bridge.entries:
        change = entry["protoPayload"]["metadata"].get("jobChange", {})
        job = change.get("job", {})
        labels = job.get("jobConfig", {}).get("labels", {})
        if change.get("after") == "DONE" and labels.get("baton_run") == run_id:
            stats = job["jobStats"]
            created[labels["baton_job"]] = dt.datetime.fromisoformat(stats["createTime"].replace("Z", "+00:00"))
            ended[labels["baton_job"]] = dt.datetime.fromisoformat(stats["endTime"].replace("Z", "+00:00"))
    return created, ended


def test_elt_daily_runs_through_all_layers_on_events_alone(local_stack: LocalStack, run_store: SpannerRunStore) -> None:
    stats = local_stack.bigquery.stats()
    stats.reset()
    started = local_stack.start_run("elt_daily", {"run_date": RUN_DATE})
    run = wait_for_run(run_store, started["run_id"])

    jobs = run_store.list_jobs(run.run_id)
    assert run.status == RunStatus.SUCCEEDED, [(j.job_key, j.status, j.error) for j in jobs]
    assert len(jobs) == 9
    assert {(j.status, j.attempt) for j in jobs} == {(JobStatus.SUCCEEDED, 1)}
    assert baton_jobs_of(local_stack, run.run_id) == Counter({j.job_key: 1 for j in jobs})
    # Dependents reached BigQuery only after their upstreams finished there (BigQuery's own times).
    created, ended = bigquery_times(local_stack, run.run_id)
    for job in jobs:
        for upstream in job.spec.needs:
            assert created[job.job_key] >= ended[upstream], (job.job_key, upstream)
    # The handlers submit; they never ask BigQuery how a job is doing.
    assert stats.get_calls("baton-handlers") == 0
    assert stats.get_calls_before_done("baton-handlers") == 0
    assert stats.snapshot()["calls"]["jobs.insert"]["baton-handlers"] == 9

    lines = rows(local_stack, "SELECT order_id, amount FROM consume.order_lines ORDER BY order_id")
    assert [(r["order_id"], r["amount"]) for r in lines] == [(100, 16.5), (101, 420.0), (102, 180.0), (103, 360.0), (104, 55.0)]
    big = rows(local_stack, f"SELECT order_id FROM events.big_orders WHERE event_date = '{RUN_DATE}' ORDER BY order_id")
    assert [r["order_id"] for r in big] == [101, 102, 103]
    summary = rows(local_stack, "SELECT orders, revenue, top_category FROM events.daily_summary")
    assert summary == [{"orders": 5, "revenue": 1031.5, "top_category": "equipment"}]
    countries = rows(local_stack, "SELECT country, orders FROM consume.country_revenue ORDER BY country")
    assert [(r["country"], r["orders"]) for r in countries] == [("BR", 1), ("IN", 1), ("IT", 1), ("NZ", 2)]


def test_a_second_run_for_the_same_date_replaces_rather_than_duplicates(
    local_stack: LocalStack, run_store: SpannerRunStore
) -> None:
    for _ in range(2):
        run = wait_for_run(run_store, local_stack.start_run("elt_daily", {"run_date": "2026-11-28"})["run_id"])
        assert run.status == RunStatus.SUCCEEDED
    history = rows(local_stack, "SELECT COUNT(*) AS n FROM history.orders WHERE loaded_on = '2026-11-28'")
    assert history == [{"n": 5}]


def test_a_job_labelled_for_another_environment_is_not_routed(local_stack: LocalStack) -> None:
    from google.cloud import bigquery

    client = local_stack.bigquery_client()
    labels = {"baton_env": "prod", "baton_run": "f" * 32, "baton_job": "x", "baton_attempt": "1"}
    job = client.query(
        "SELECT 1", job_config=bigquery.QueryJobConfig(labels=labels), job_id="baton_prod_" + "f" * 32 + "_x_1", job_retry=None
    )
    job.result()
    local_stack.bigquery.bridge.flush()
    ours = [e for e in local_stack.bigquery.bridge.entries if e["protoPayload"]["resourceName"].endswith(job.job_id)]
    routed = [e for e in local_stack.bigquery.bridge.routed if e["protoPayload"]["resourceName"].endswith(job.job_id)]
    assert any(e["protoPayload"]["metadata"].get("jobChange", {}).get("after") == "DONE" for e in ours)
    assert routed == []
