"""Cloud faults the local BigQuery plays, as a real google-cloud-bigquery client sees them; each off by default.

Every test turns its fault on through the façade's /_faults (devstack.faults.FaultClient), the surface
the suites use, and an autouse fixture clears it afterwards.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from google.api_core import exceptions
from google.api_core.client_info import ClientInfo
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from devstack.bigquery_facade import LocalBigQuery
from devstack.faults import FaultClient, FaultDocumentError, FaultRule, JobQueueLimits
from tests.devstack.conftest import CapturingPublisher

pytestmark = pytest.mark.integration

PROJECT = "baton-local"
COMPLETION_SA = "baton-dev-job-completed@baton-dev-project.iam.gserviceaccount.com"
RECONCILE_SA = "baton-dev-reconcile@baton-dev-project.iam.gserviceaccount.com"


def _client(local: LocalBigQuery, identity: str | None = None) -> bigquery.Client:
    endpoint = local.facade.endpoint_for(identity) if identity else local.endpoint
    return bigquery.Client(
        project=PROJECT,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": endpoint},
        client_info=ClientInfo(user_agent="fault-tests/1"),
    )


def _job_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


def _submit(client: bigquery.Client, job_id: str, sql: str = "SELECT 1 AS one", **kwargs: Any) -> bigquery.QueryJob:
    labels = kwargs.pop("labels", {})
    config = bigquery.QueryJobConfig(labels=labels, **kwargs.pop("config", {}))
    return client.query(sql, job_config=config, job_id=job_id, location="US", job_retry=None, **kwargs)


@pytest.fixture
def faults(local_bigquery: LocalBigQuery) -> Iterator[FaultClient]:
    client = FaultClient(local_bigquery.endpoint)
    client.clear()
    try:
        yield client
    finally:
        client.clear()


@pytest.fixture(scope="module")
def client(local_bigquery: LocalBigQuery) -> bigquery.Client:
    return _client(local_bigquery)


def test_no_fault_is_on_by_default(local_bigquery: LocalBigQuery, client: bigquery.Client) -> None:
    state = FaultClient(local_bigquery.endpoint).state()
    assert state["rules"] == []
    assert state["settings"] == {
        "job_queue": None,
        "owner_only_results": False,
        "instance_limits": False,
        "instance_overrides": {},
        "instance_wait_s": 30.0,
    }
    # The same calls the faults below break all succeed, for any identity.
    job = _submit(_client(local_bigquery, COMPLETION_SA), _job_id("default"), retry=None)
    assert [row["one"] for row in _client(local_bigquery, RECONCILE_SA).get_job(job.job_id, retry=None).result()] == [1]
    assert FaultClient(local_bigquery.endpoint).counters() == {}


@pytest.mark.parametrize(
    ("status", "reason", "exception"),
    [
        (403, "rateLimitExceeded", exceptions.Forbidden),
        (403, "quotaExceeded", exceptions.Forbidden),
        (400, "invalid", exceptions.BadRequest),
        (404, "notFound", exceptions.NotFound),
        (500, "backendError", exceptions.InternalServerError),
        (503, "backendError", exceptions.ServiceUnavailable),
    ],
)
def test_jobs_insert_refusals_reach_the_client_with_bigquerys_reason(
    local_bigquery: LocalBigQuery,
    client: bigquery.Client,
    faults: FaultClient,
    status: int,
    reason: str,
    exception: type[exceptions.GoogleAPICallError],
) -> None:
    prefix = _job_id("refused")
    faults.add(FaultRule(method="jobs.insert", status=status, reason=reason, job_id_prefix=prefix, count=1))

    with pytest.raises(exception) as refused:
        _submit(client, f"{prefix}_a", retry=None)

    assert refused.value.code == status
    assert refused.value.errors[0]["reason"] == reason
    with pytest.raises(exceptions.NotFound):  # refused before the job existed
        client.get_job(f"{prefix}_a", location="US", retry=None)
    # count=1: the next insert goes through; jobs not matching the prefix never saw the rule.
    assert _submit(client, f"{prefix}_b", retry=None).result().total_rows == 1
    assert faults.state()["rules"][0]["hits"] == 1


def test_the_clients_default_retry_rides_out_rate_limits_but_not_quota(client: bigquery.Client, faults: FaultClient) -> None:
    # What Baton meets in the cloud: DEFAULT_RETRY retries rateLimitExceeded (for up to 600 s), never quotaExceeded.
    throttled, exhausted = _job_id("throttled"), _job_id("exhausted")
    faults.add(
        FaultRule(method="jobs.insert", status=403, reason="rateLimitExceeded", job_id_prefix=throttled, count=2),
        FaultRule(method="jobs.insert", status=403, reason="quotaExceeded", job_id_prefix=exhausted),
    )

    assert _submit(client, throttled).result().total_rows == 1
    with pytest.raises(exceptions.Forbidden) as refused:
        _submit(client, exhausted)

    assert refused.value.errors[0]["reason"] == "quotaExceeded"
    assert [rule["hits"] for rule in faults.state()["rules"]] == [2, 1]


def _call(client: bigquery.Client, method: str, job_id: str, timeout: float = 30) -> object:
    """One call of `method` about `job_id`, without the client's own retry."""
    if method == "jobs.insert":
        return _submit(client, job_id, retry=None, timeout=timeout)
    if method == "jobs.get":
        return client.get_job(job_id, location="US", retry=None, timeout=timeout)
    return client._get_query_results(job_id, retry=None, project=PROJECT, timeout_ms=0, location="US", timeout=timeout)


@pytest.mark.parametrize(
    ("method", "status", "exception"),
    [("jobs.get", 503, exceptions.ServiceUnavailable), ("jobs.getQueryResults", 502, exceptions.BadGateway)],
)
def test_reads_of_a_job_answer_5xx(
    client: bigquery.Client, faults: FaultClient, method: str, status: int, exception: type[exceptions.GoogleAPICallError]
) -> None:
    job_id = _job_id("read5xx")
    _submit(client, job_id, retry=None)
    faults.add(FaultRule(method=method, status=status, job_id_prefix=job_id, count=1))

    with pytest.raises(exception):
        _call(client, method, job_id)

    assert client.get_job(job_id, location="US", retry=None).result().total_rows == 1  # count=1: healthy again


@pytest.mark.parametrize("method", ["jobs.insert", "jobs.get", "jobs.getQueryResults"])
def test_slow_answers(client: bigquery.Client, faults: FaultClient, method: str) -> None:
    job_id = _job_id("slow")
    if method != "jobs.insert":
        _submit(client, job_id, retry=None).result()
    faults.add(FaultRule(method=method, delay_s=2.0, job_id_prefix=job_id, count=1))

    started = time.monotonic()
    _call(client, method, job_id)

    assert time.monotonic() - started >= 2.0


@pytest.mark.parametrize("method", ["jobs.insert", "jobs.get"])
def test_a_slow_answer_outlives_a_short_client_deadline(client: bigquery.Client, faults: FaultClient, method: str) -> None:
    # getQueryResults is left out: the client raises any deadline it is given for it to at least 120 s.
    job_id = _job_id("deadline")
    if method == "jobs.get":
        _submit(client, job_id, retry=None).result()
    faults.add(FaultRule(method=method, delay_s=1.5, job_id_prefix=job_id, count=1))

    with pytest.raises(requests.exceptions.Timeout):
        _call(client, method, job_id, timeout=0.5)

    if method == "jobs.insert":  # the insert the client gave up on is still carried out, as in BigQuery
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(exceptions.NotFound):
                if client.get_job(job_id, location="US", retry=None).state == "DONE":
                    break
            assert time.monotonic() < deadline
            time.sleep(0.1)


def _wait_until_nothing_runs(local: LocalBigQuery) -> None:
    deadline = time.monotonic() + 30
    while any(job["state"] != "DONE" for job in requests.get(f"{local.endpoint}/_facade/jobs", timeout=10).json()["jobs"]):
        assert time.monotonic() < deadline, "jobs of earlier tests still run"
        time.sleep(0.1)


def test_a_full_query_queue_holds_jobs_pending_then_refuses_as_bigquery(
    local_bigquery: LocalBigQuery, client: bigquery.Client, faults: FaultClient
) -> None:
    _wait_until_nothing_runs(local_bigquery)  # the running cap counts every job of the project
    faults.configure(job_queue=JobQueueLimits(max_running=1, max_queued=1))
    slow = {"sim_duration_ms": "1500"}
    first = _submit(client, _job_id("queue_run"), labels=slow, retry=None)
    second = _submit(client, _job_id("queue_wait"), labels=slow, retry=None)

    with pytest.raises(exceptions.Forbidden) as refused:
        _submit(client, _job_id("queue_full"), retry=None)

    assert (first.state, second.state) == ("RUNNING", "PENDING")
    assert second.started is None  # a queued job has not started
    assert refused.value.errors[0]["reason"] == "quotaExceeded"
    assert "max number of jobs that can be queued per project" in refused.value.message
    first.result()
    second.reload()
    assert second.state == "RUNNING"  # the slot the first job freed
    second.result()
    assert second.started is not None and first.ended is not None and second.started >= first.ended


def test_a_truncated_audit_entry_has_no_statistics(
    local_bigquery: LocalBigQuery, client: bigquery.Client, published: CapturingPublisher, faults: FaultClient
) -> None:
    truncated, whole = _job_id("truncated"), _job_id("whole")
    faults.add(FaultRule(method="auditlog.jobDone", truncate=True, job_id_prefix=truncated))
    for job_id in (truncated, whole):
        _submit(client, job_id, labels={"baton_env": "dev"}, retry=None).result()
    assert local_bigquery.bridge.flush(timeout_s=10)

    [cut] = published.for_job(truncated)
    [kept] = published.for_job(whole)
    stats = cut["protoPayload"]["metadata"]["jobChange"]["job"]["jobStats"]
    assert "queryStats" not in stats and "totalSlotMs" not in stats
    assert "queryStats" in kept["protoPayload"]["metadata"]["jobChange"]["job"]["jobStats"]
    assert client.get_job(truncated, location="US").total_bytes_processed is not None  # jobs.get still has them


def test_anonymous_results_are_readable_only_by_the_identity_that_ran_the_query(
    local_bigquery: LocalBigQuery, faults: FaultClient
) -> None:
    owner, other = _client(local_bigquery, COMPLETION_SA), _client(local_bigquery, RECONCILE_SA)
    faults.configure(owner_only_results=True)
    job_id = _job_id("private")
    _submit(owner, job_id, "SELECT 1 AS x UNION ALL SELECT 2", retry=None).result()

    seen_by_other = other.get_job(job_id, location="US", retry=None)  # the job itself is visible
    assert seen_by_other.user_email == COMPLETION_SA
    with pytest.raises(exceptions.Forbidden) as denied:
        seen_by_other.result(max_results=0, timeout=10, retry=None)
    assert denied.value.errors[0]["reason"] == "accessDenied"
    assert seen_by_other.destination is not None
    with pytest.raises(exceptions.Forbidden):
        list(other.list_rows(seen_by_other.destination, retry=None))
    assert owner.get_job(job_id, location="US").result().total_rows == 2


def test_a_missing_dataset_or_table_is_bigquerys_not_found(client: bigquery.Client, faults: FaultClient) -> None:
    # Always on: not a fault, the engine's DuckDB words ("Catalog Error: Schema ...") said as BigQuery says them.
    with pytest.raises(exceptions.NotFound) as dataset:
        client.get_dataset(f"{PROJECT}.no_such_dataset", retry=None)
    assert dataset.value.message.endswith(f": Not found: Dataset {PROJECT}:no_such_dataset")
    assert dataset.value.errors[0]["reason"] == "notFound"
    raw = requests.get(f"{client._connection.API_BASE_URL}/bigquery/v2/projects/{PROJECT}/datasets/nowhere", timeout=10)
    assert raw.json()["error"]["status"] == "NOT_FOUND"

    job = _submit(client, _job_id("ctas"), config={"destination": f"{PROJECT}.no_such_dataset.t"}, retry=None)
    with pytest.raises(exceptions.NotFound):
        job.result()
    assert job.error_result == {
        "reason": "notFound",
        "message": f"Not found: Dataset {PROJECT}:no_such_dataset was not found in location US",
    }


def test_fault_documents_are_checked_whole(local_bigquery: LocalBigQuery, faults: FaultClient) -> None:
    with pytest.raises(FaultDocumentError, match="unknown method"):
        faults.add(FaultRule.from_json({"method": "jobs.teleport"}))
    bad = {"rules": [{"method": "jobs.get", "status": 503}, {"method": "jobs.get", "colour": "red"}]}
    response = requests.post(f"{local_bigquery.endpoint}/_faults", json=bad, timeout=10)
    assert response.status_code == 400
    assert "colour" in response.json()["error"]["message"]
    assert faults.state()["rules"] == []  # nothing of a refused document applies
