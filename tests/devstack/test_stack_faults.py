"""Cloud faults of the whole local stack: identities per function, and Cloud Run's 429 in front of each function.

A stack of its own (the push backoff shortened, as the chaos suite does, so that a message runs out of
delivery attempts in seconds rather than minutes); every fault is cleared after each test.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from baton.adapters.spanner_store import SpannerRunStore
from devstack.faults import FaultClient, FaultRule
from devstack.function_front import NO_INSTANCE_MESSAGE
from devstack.pubsub_admin import publish, pull
from devstack.stack import REPO, LocalStack, LocalStackOptions
from tests.run_watch import wait_for_run

pytestmark = pytest.mark.integration

MANIFEST = {
    "name": "fault_identities",
    "jobs": [{"key": "root", "sql": "SELECT 1 AS one"}, {"key": "child", "sql": "SELECT 2 AS two", "needs": ["root"]}],
}


@pytest.fixture(scope="module")
def stack(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    manifests = tmp_path_factory.mktemp("fault-manifests")
    (manifests / "fault_identities.yaml").write_text(yaml.safe_dump(MANIFEST, sort_keys=False))
    options = LocalStackOptions(
        work_dir=REPO / ".devstack" / f"faults-{os.getpid()}",
        job_duration_s=0.1,
        synth_dir=synth_dir,
        manifests_dir=manifests,
        push_backoff_s=(0.5, 1.0),
    )
    with LocalStack.start(options) as local:
        yield local


@pytest.fixture
def faults(stack: LocalStack) -> Iterator[FaultClient]:
    client = stack.fault_client()
    client.clear()
    try:
        yield client
    finally:
        client.clear()


def test_each_function_calls_bigquery_as_its_own_service_account(stack: LocalStack, faults: FaultClient) -> None:
    run_id = stack.start_run("fault_identities", {})["run_id"]
    assert wait_for_run(SpannerRunStore(stack.database()), run_id, timeout_s=60).status.value == "SUCCEEDED"

    client = stack.bigquery_client()
    submitted_by = {
        job.labels["baton_job"]: job.user_email
        for job in client.list_jobs(max_results=200)
        if job.labels.get("baton_run") == run_id
    }
    functions = stack.topology.functions
    assert submitted_by == {
        "root": functions["start_manifest"].service_account_email,
        "child": functions["bigquery_job_completed"].service_account_email,
    }


def test_the_front_enforces_max_instances_times_concurrency_only_when_asked(stack: LocalStack, faults: FaultClient) -> None:
    front = stack.fronts["start_manifest"]
    capacity = stack.topology.functions["start_manifest"].capacity  # 20 x 1 in dev, read from the handlers stack
    # Hold every request in its "instance" for a second, so that capacity + 1 requests overlap.
    faults.add(FaultRule(method="function.invoke", function="start_manifest", delay_s=1.0, status=503))

    def burst() -> list[requests.Response]:
        answers: list[requests.Response] = []
        lock = threading.Lock()

        def call() -> None:
            answer = requests.post(front.url, json={}, timeout=30)
            with lock:
                answers.append(answer)

        threads = [threading.Thread(target=call) for _ in range(capacity + 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return answers

    assert [answer.status_code for answer in burst()].count(429) == 0  # off by default: nothing is refused
    faults.configure(instance_limits=True, instance_wait_s=0.0)
    limited = burst()

    refused = [answer for answer in limited if answer.status_code == 429]
    assert len(refused) == 1
    assert refused[0].text == NO_INSTANCE_MESSAGE
    assert faults.counters()["function.invoke.refused.start_manifest"] == 1


def test_cloud_run_holds_a_request_for_a_free_instance_before_refusing(stack: LocalStack, faults: FaultClient) -> None:
    front = stack.fronts["start_manifest"]
    faults.configure(instance_limits=True, instance_overrides={"start_manifest": 1}, instance_wait_s=5.0)
    faults.add(FaultRule(method="function.invoke", function="start_manifest", delay_s=1.0, status=503, count=1))
    holder = threading.Thread(target=lambda: requests.post(front.url, json={}, timeout=30))
    holder.start()
    time.sleep(0.3)

    waited = requests.post(front.url, json={"manifest": "no_such_manifest"}, timeout=30)  # queued, then served
    holder.join()

    assert waited.status_code not in (429, 503)
    assert "function.invoke.refused.start_manifest" not in faults.counters()


def test_each_429_from_the_front_counts_as_a_pubsub_delivery_attempt(stack: LocalStack, faults: FaultClient) -> None:
    # No instance free at all: every push of the message is refused until Pub/Sub dead-letters it.
    faults.configure(instance_limits=True, instance_overrides={"bigquery_job_completed": 0}, instance_wait_s=0.0)
    marker = secrets.token_hex(6)
    publish(stack.pubsub.host, stack.pubsub_paths.completion_topic, json.dumps({"marker": marker}).encode())

    dead = []
    deadline = time.monotonic() + 90
    while not dead and time.monotonic() < deadline:
        received = pull(stack.pubsub.host, stack.pubsub_paths.dead_letter_subscription, timeout=2)
        dead = [message for message in received if marker.encode() in message.message.data]

    max_attempts = stack.topology.push_subscription.max_delivery_attempts
    assert dead, f"the refused message was not dead-lettered after {max_attempts} attempts"
    assert dead[0].message.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == str(max_attempts)
    assert faults.counters()["function.invoke.refused.bigquery_job_completed"] == max_attempts
    assert "function.invoke.accepted.bigquery_job_completed" not in faults.counters()  # the handler never saw it
