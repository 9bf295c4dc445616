"""The local BigQuery through the real google-cloud-bigquery client against a real bqemulator engine."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import requests
from google.api_core import exceptions
from google.api_core.client_info import ClientInfo
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from baton.domain.naming import baton_labels, bigquery_job_id
from baton.entrypoints.audit_log import ParsedCompletion, parse_log_entry
from devstack.audit_bridge import AuditJob, AuditLogBridge, ChaosPolicy, PubSubPublisher, entry_job_id
from devstack.bigquery_facade import LocalBigQuery, caller_of
from tests.devstack.conftest import SINK_FILTER, CapturingPublisher

pytestmark = pytest.mark.integration

PROJECT = "baton-local"
HANDLERS_AGENT = "baton-handlers/0.1.0"


def _client(local: LocalBigQuery, agent: str = HANDLERS_AGENT) -> bigquery.Client:
    return bigquery.Client(
        project=PROJECT,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": local.endpoint},
        client_info=ClientInfo(user_agent=agent),
    )


def _job_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


def _submit(
    client: bigquery.Client, sql: str, job_id: str, *, labels: Mapping[str, str] | None = None, **config: Any
) -> bigquery.QueryJob:
    job_config = bigquery.QueryJobConfig(labels=dict(labels or {}), **config)
    return client.query(sql, job_config=job_config, job_id=job_id, location="US", job_retry=None)


def _get(client: bigquery.Client, job_id: str) -> bigquery.QueryJob:
    job = client.get_job(job_id, location="US")
    assert isinstance(job, bigquery.QueryJob)
    return job


def _count(client: bigquery.Client, table: str) -> int:
    return int(next(iter(client.query(f"SELECT COUNT(*) AS n FROM `{table}`").result()))["n"])


@pytest.fixture(scope="module")
def client(local_bigquery: LocalBigQuery) -> bigquery.Client:
    return _client(local_bigquery)


@pytest.fixture(scope="module")
def dataset(client: bigquery.Client) -> str:
    name = f"facade_{secrets.token_hex(3)}"
    client.create_dataset(name)
    return f"{PROJECT}.{name}"


@pytest.fixture
def counter_table(client: bigquery.Client, dataset: str) -> str:
    table = f"{dataset}.counter_{secrets.token_hex(3)}"
    client.query(f"CREATE TABLE `{table}` AS SELECT 1 AS x").result()
    return table


# --- the job control plane ----------------------------------------------------------------------


def test_insert_answers_running_then_done_with_rows(local_bigquery: LocalBigQuery, client: bigquery.Client) -> None:
    job_id = _job_id("running")
    started = time.monotonic()
    job = _submit(client, "SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, 'y'", job_id, labels={"sim_duration_ms": "1000"})
    assert job.state == "RUNNING"
    assert _get(client, job_id).state == "RUNNING"

    rows = sorted(tuple(row.values()) for row in job.result())

    assert rows == [(1, "x"), (2, "y")]
    assert time.monotonic() - started >= 0.9  # the simulated duration, not the engine's speed
    done = _get(client, job_id)
    assert done.state == "DONE"
    assert done.error_result is None
    assert done.statement_type == "SELECT"
    assert done.ended is not None and done.started is not None and done.ended >= done.started


def test_duplicate_job_id_answers_409_and_keeps_the_first_job(local_bigquery: LocalBigQuery, client: bigquery.Client) -> None:
    job_id = _job_id("dup")
    _submit(client, "SELECT 'first' AS v", job_id).result()

    with pytest.raises(exceptions.Conflict) as conflict:
        _submit(client, "SELECT 'second' AS v", job_id)

    assert conflict.value.code == 409
    assert f"Already Exists: Job {PROJECT}:US.{job_id}" in conflict.value.message
    assert conflict.value.errors[0]["reason"] == "duplicate"
    assert _get(client, job_id).query == "SELECT 'first' AS v"
    # The raw answer is BigQuery's error shape.
    body = {"jobReference": {"jobId": job_id}, "configuration": {"query": {"query": "SELECT 3"}}}
    raw = requests.post(f"{local_bigquery.endpoint}/bigquery/v2/projects/{PROJECT}/jobs", json=body, timeout=10)
    assert raw.status_code == 409
    assert raw.json()["error"]["status"] == "ALREADY_EXISTS"
    assert raw.json()["error"]["errors"][0]["reason"] == "duplicate"


def test_a_lost_insert_response_then_retry_ends_in_conflict(local_bigquery: LocalBigQuery, client: bigquery.Client) -> None:
    # The job is created but the client sees 503; the client's retry of jobs.insert then gets 409.
    job_id = _job_id("lost")
    local_bigquery.facade.inject_insert_error(job_id, status=503, register=True)

    with pytest.raises(exceptions.Conflict):
        _submit(client, "SELECT 1", job_id)

    assert local_bigquery.facade.wait_done(PROJECT, job_id)
    assert _get(client, job_id).error_result is None


def test_labels_round_trip(client: bigquery.Client) -> None:
    job_id = _job_id("labels")
    labels = {"baton_env": "test", "baton_run": "r1", "team": "data"}
    job = _submit(client, "SELECT 1", job_id, labels=labels)
    assert job.labels == labels
    assert _get(client, job_id).labels == labels
    job.result()
    listed = {listed.job_id: listed for listed in client.list_jobs(max_results=50)}
    assert listed[job_id].labels == labels
    assert listed[job_id].state == "DONE"


def test_query_parameters_with_destination_and_write_dispositions(client: bigquery.Client, dataset: str) -> None:
    table = f"{dataset}.params_{secrets.token_hex(3)}"
    sql = "SELECT @run_date AS run_date, @name AS name, @n AS n, @n * 2 AS doubled"

    def run(run_date: dt.date, name: str, n: int, disposition: str) -> bigquery.QueryJob:
        params = [
            bigquery.ScalarQueryParameter("run_date", "DATE", run_date),
            bigquery.ScalarQueryParameter("name", "STRING", name),
            bigquery.ScalarQueryParameter("n", "INT64", n),
        ]
        return _submit(client, sql, _job_id("params"), query_parameters=params, destination=table, write_disposition=disposition)

    first = run(dt.date(2024, 1, 2), "alpha", 5, "WRITE_TRUNCATE")
    assert [tuple(row.values()) for row in first.result()] == [(dt.date(2024, 1, 2), "alpha", 5, 10)]
    assert first.destination is not None and first.destination.table_id == table.rsplit(".", 1)[1]

    run(dt.date(2024, 1, 3), "beta", 7, "WRITE_TRUNCATE").result()  # truncate: replaces the row
    assert [tuple(row.values()) for row in client.list_rows(table)] == [(dt.date(2024, 1, 3), "beta", 7, 14)]

    run(dt.date(2024, 1, 4), "gamma", 1, "WRITE_APPEND").result()
    assert sorted(row["name"] for row in client.list_rows(table)) == ["beta", "gamma"]

    refused = run(dt.date(2024, 1, 5), "delta", 1, "WRITE_EMPTY")
    with pytest.raises(exceptions.Conflict):
        refused.result()
    assert refused.error_result is not None and refused.error_result["reason"] == "duplicate"
    assert _count(client, table) == 2


def test_destination_takes_commented_sql_and_refuses_scripts(client: bigquery.Client, dataset: str) -> None:
    table = f"{dataset}.shape_{secrets.token_hex(3)}"
    commented = "-- daily load\nSELECT 'a;b' AS v /* not; a script */ ;  -- done\n"
    assert [row["v"] for row in _submit(client, commented, _job_id("shape"), destination=table).result()] == ["a;b"]

    script = _submit(
        client, "SELECT 1 AS v; SELECT 2 AS v", _job_id("shape"), destination=table, write_disposition="WRITE_APPEND"
    )
    with pytest.raises(exceptions.BadRequest):
        script.result()
    assert script.error_result is not None and "scripts" in script.error_result["message"]
    assert _count(client, table) == 1


@pytest.mark.parametrize(
    ("sql", "reason", "exception"),
    [
        ("SELEC 1 FRM nowhere", "invalidQuery", exceptions.BadRequest),
        ("SELECT * FROM `baton-local.no_such_dataset.no_table`", "notFound", exceptions.NotFound),
    ],
)
def test_a_failing_query_is_done_with_error_result(
    client: bigquery.Client, published: CapturingPublisher, sql: str, reason: str, exception: type[Exception]
) -> None:
    job_id = _job_id("failing")
    job = _submit(client, sql, job_id, labels={"baton_env": "dev"})
    assert job.state == "RUNNING"  # the insert itself succeeds, as in BigQuery

    with pytest.raises(exception):
        job.result()

    failed = _get(client, job_id)
    assert failed.state == "DONE"
    assert failed.error_result is not None and failed.error_result["reason"] == reason
    assert failed.error_result["message"]


def test_cancel_before_the_end_prevents_the_effects(
    local_bigquery: LocalBigQuery, client: bigquery.Client, counter_table: str
) -> None:
    job_id = _job_id("cancel")
    job = _submit(client, f"INSERT INTO `{counter_table}` (x) VALUES (2)", job_id, labels={"sim_duration_ms": "600"})

    assert job.cancel()

    assert job.state == "DONE"
    assert job.error_result is not None and job.error_result["reason"] == "stopped"
    time.sleep(0.8)  # past the job's scheduled end: it must not run late either
    assert _count(client, counter_table) == 1
    assert _get(client, job_id).error_result["reason"] == "stopped"


def test_injected_failure_ends_done_without_running_the_query(
    local_bigquery: LocalBigQuery, client: bigquery.Client, counter_table: str, published: CapturingPublisher
) -> None:
    job_id = _job_id("fault")
    local_bigquery.facade.inject_failure(job_id, reason="backendError", message="The service is temporarily unavailable")
    job = _submit(client, f"INSERT INTO `{counter_table}` (x) VALUES (3)", job_id, labels={"baton_env": "dev"})

    assert local_bigquery.facade.wait_done(PROJECT, job_id)
    job.reload()
    assert job.error_result == {"reason": "backendError", "message": "The service is temporarily unavailable"}
    assert _count(client, counter_table) == 1
    local_bigquery.bridge.flush()
    [entry] = published.for_job(job_id)
    assert entry["protoPayload"]["metadata"]["jobChange"]["job"]["jobStatus"]["errorResult"]["code"] == 14
    assert entry["severity"] == "ERROR"


def test_jobs_get_is_counted_per_caller_and_before_done(local_bigquery: LocalBigQuery) -> None:
    handler = _client(local_bigquery, HANDLERS_AGENT)
    poller = _client(local_bigquery, "test-poller/2.0")
    stats = local_bigquery.stats()
    stats.reset()
    job_id = _job_id("counted")
    _submit(handler, "SELECT 1", job_id, labels={"sim_duration_ms": "1500"})

    for _ in range(3):
        assert poller.get_job(job_id, location="US").state == "RUNNING"
    assert local_bigquery.facade.wait_done(PROJECT, job_id)
    assert handler.get_job(job_id, location="US").state == "DONE"

    assert (stats.get_calls("test-poller"), stats.get_calls_before_done("test-poller")) == (3, 3)
    assert (stats.get_calls("baton-handlers"), stats.get_calls_before_done("baton-handlers")) == (1, 0)
    over_http = requests.get(f"{local_bigquery.endpoint}/_facade/stats", timeout=10).json()
    assert over_http["calls"]["jobs.get"] == {"test-poller": 3, "baton-handlers": 1}
    assert over_http["calls_before_done"]["jobs.get"] == {"test-poller": 3}
    assert over_http["calls"]["jobs.insert"] == {"baton-handlers": 1}


def test_caller_is_the_first_user_agent_product() -> None:
    assert caller_of("baton-handlers/0.1.0 gl-python/3.11.9 gccl/3.47.0") == "baton-handlers"
    assert caller_of("") == "unknown"


def test_scripts_dml_and_jobs_query(client: bigquery.Client, dataset: str) -> None:
    table = f"{dataset}.script_{secrets.token_hex(3)}"
    script = f"CREATE TABLE `{table}` AS SELECT 1 AS x; INSERT INTO `{table}` (x) VALUES (2); SELECT SUM(x) AS s FROM `{table}`"
    job = _submit(client, script, _job_id("script"))
    assert [row["s"] for row in job.result()] == [3]
    assert job.statement_type == "SCRIPT"

    merge = _submit(client, f"UPDATE `{table}` SET x = x * 10 WHERE x = 2", _job_id("dml"))
    merge.result()
    assert merge.num_dml_affected_rows == 1
    assert [row["total"] for row in client.query_and_wait(f"SELECT SUM(x) AS total FROM `{table}`")] == [21]


# --- the audit-log bridge -----------------------------------------------------------------------


def test_bridge_publishes_exactly_the_matching_done_entry(
    local_bigquery: LocalBigQuery, client: bigquery.Client, published: CapturingPublisher, dataset: str
) -> None:
    run_id = secrets.token_hex(16)
    dev_id = bigquery_job_id("dev", run_id, "load_orders", 1)
    prod_id = bigquery_job_id("prod", run_id, "load_orders", 1)
    destination = f"{dataset}.orders_{secrets.token_hex(3)}"
    dev_job = _submit(
        client,
        "SELECT 1 AS id UNION ALL SELECT 2",
        dev_id,
        labels=baton_labels("dev", run_id, "load_orders", 1),
        destination=destination,
        write_disposition="WRITE_TRUNCATE",
    )
    prod_job = _submit(client, "SELECT 1", prod_id, labels=baton_labels("prod", run_id, "load_orders", 1))
    dev_job.result()
    prod_job.result()
    assert local_bigquery.bridge.flush()

    [entry] = published.for_job(dev_id)
    assert published.for_job(prod_id) == []
    written = [e for e in local_bigquery.bridge.entries if entry_job_id(e) in (dev_id, prod_id)]
    assert len(written) == 6  # insertion, RUNNING and DONE for each job; the sink routes one

    payload = entry["protoPayload"]
    change = payload["metadata"]["jobChange"]
    assert payload["@type"] == "type.googleapis.com/google.cloud.audit.AuditLog"
    assert payload["methodName"] == "google.cloud.bigquery.v2.JobService.InsertJob"
    assert payload["resourceName"] == f"projects/{PROJECT}/jobs/{dev_id}"
    assert payload["status"] == {}
    assert (change["before"], change["after"]) == ("RUNNING", "DONE")
    assert change["job"]["jobName"] == f"projects/{PROJECT}/jobs/{dev_id}"
    assert change["job"]["jobConfig"]["labels"] == baton_labels("dev", run_id, "load_orders", 1)
    query_config = change["job"]["jobConfig"]["queryConfig"]
    project, dataset_id, table_id = destination.split(".")
    assert query_config["destinationTable"] == f"projects/{project}/datasets/{dataset_id}/tables/{table_id}"
    assert query_config["writeDisposition"] == "WRITE_TRUNCATE"
    assert query_config["statementType"] == "SELECT"
    assert change["job"]["jobStatus"] == {"jobState": "DONE"}
    assert change["job"]["jobStats"]["queryStats"]["outputRowCount"] == "2"
    assert entry["resource"] == {"type": "bigquery_project", "labels": {"project_id": PROJECT, "location": "US"}}
    assert entry["logName"] == f"projects/{PROJECT}/logs/cloudaudit.googleapis.com%2Fdata_access"
    assert entry["severity"] == "INFO"

    # Baton's own parser reads it as the completion of that job.
    parsed = parse_log_entry(entry, environment="dev")
    assert isinstance(parsed, ParsedCompletion)
    assert (parsed.completion.run_id, parsed.completion.job_key, parsed.completion.attempt) == (run_id, "load_orders", 1)
    assert parsed.completion.error is None


def _audit_job(job_id: str) -> AuditJob:
    now = dt.datetime.now(dt.UTC)
    return AuditJob("p", job_id, "US", "SELECT 1", {"baton_env": "dev"}, now, start_time=now, end_time=now)


def test_chaos_policy_drops_duplicates_and_delays() -> None:
    captured = CapturingPublisher()
    policy = ChaosPolicy().drop("dropped").duplicate("doubled", copies=2).delay("late", 0.3)
    bridge = AuditLogBridge(SINK_FILTER, captured, policy=policy)
    try:
        for job_id in ("dropped", "doubled", "late", "plain"):
            bridge.job_inserted(_audit_job(job_id))
            bridge.job_done(_audit_job(job_id))
        time.sleep(0.1)
        assert captured.for_job("late") == []  # not yet
        assert bridge.flush(timeout_s=5)
        assert [len(captured.for_job(job_id)) for job_id in ("dropped", "doubled", "late", "plain")] == [0, 2, 1, 1]
        assert len(bridge.routed) == 4  # the sink matched each DONE entry; the policy decided delivery
        # Rules apply `times` times: a second DONE of "dropped" is delivered.
        bridge.job_done(_audit_job("dropped"))
        assert bridge.flush(timeout_s=5)
        assert len(captured.for_job("dropped")) == 1
    finally:
        bridge.close()


def test_bridge_retries_a_failing_publisher() -> None:
    delivered: list[str] = []
    failures = iter([RuntimeError("pubsub down")])

    def flaky(entry: Mapping[str, Any]) -> None:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        delivered.append(str(entry_job_id(entry)))

    bridge = AuditLogBridge(SINK_FILTER, flaky)
    try:
        bridge.job_done(_audit_job("flaky"))
        assert bridge.flush(timeout_s=5)
        assert delivered == ["flaky"]
        assert len(bridge.errors) == 1
    finally:
        bridge.close()


@pytest.fixture(scope="module")
def pubsub_host(supervisor: Any) -> Iterator[str]:
    from devstack.emulators import PubSubEmulator

    emulator = PubSubEmulator.start(supervisor, project=PROJECT)
    try:
        yield emulator.host
    finally:
        emulator.stop()


def test_pubsub_publisher_sends_what_a_log_sink_sends(pubsub_host: str) -> None:
    import grpc
    from google.cloud.pubsub_v1 import SubscriberClient
    from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport

    publisher = PubSubPublisher(PROJECT, "bigquery-audit", emulator_host=pubsub_host)
    subscriber = SubscriberClient(transport=SubscriberGrpcTransport(channel=grpc.insecure_channel(pubsub_host)))
    subscription = subscriber.subscription_path(PROJECT, "bigquery-audit-test")
    publisher._client.create_topic(name=publisher.topic_path)
    subscriber.create_subscription(name=subscription, topic=publisher.topic_path)
    bridge = AuditLogBridge(SINK_FILTER, publisher)
    try:
        bridge.job_inserted(_audit_job("to_pubsub"))
        bridge.job_done(_audit_job("to_pubsub"))
        assert bridge.flush(timeout_s=10)
        [expected] = bridge.published
        response = subscriber.pull(subscription=subscription, max_messages=10, timeout=10)
    finally:
        bridge.close()
        publisher.close()
        subscriber.close()

    [received] = response.received_messages
    assert json.loads(received.message.data) == expected
    assert received.message.attributes["logging.googleapis.com/timestamp"] == expected["timestamp"]
