"""The entry points through the real functions-framework app, with the core on in-memory fakes."""

from __future__ import annotations

import base64
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from functions_framework import create_app

from baton import bootstrap
from baton.config import Settings
from baton.domain.records import JobStatus, RunStatus
from baton.manifests.loading import ManifestRepository
from baton.service.orchestrator import Orchestrator
from tests.fakes import InMemoryRunStore, RecordingSubmitter
from tests.fixtures import load_fixture

REPO = Path(__file__).resolve().parents[2]
MAIN = str(REPO / "handlers" / "main.py")
SETTINGS = Settings(
    environment="dev",
    project="baton-local",
    spanner_instance="unused",
    spanner_database="unused",
    bigquery_location="US",
    manifests_dir=REPO / "manifests",
)


class Core:
    def __init__(self) -> None:
        self.store = InMemoryRunStore()
        self.submitter = RecordingSubmitter()
        self.orchestrator = Orchestrator(self.store, self.submitter, ManifestRepository(SETTINGS.manifests_dir), "dev")


@pytest.fixture
def core(monkeypatch: pytest.MonkeyPatch) -> Core:
    core = Core()
    monkeypatch.setattr(bootstrap, "orchestrator", lambda: core.orchestrator)
    monkeypatch.setattr(bootstrap, "settings", lambda: SETTINGS)
    return core


def client(target: str) -> Any:
    return create_app(target, MAIN).test_client()


def push_body(entry: object) -> bytes:
    data = base64.b64encode(json.dumps(entry).encode()).decode()
    return json.dumps({"message": {"data": data, "messageId": "1"}, "subscription": "projects/p/subscriptions/s"}).encode()


def completion_entry(run_id: str, job_key: str, attempt: int = 1, error: dict[str, Any] | None = None) -> dict[str, Any]:
    entry = load_fixture("audit_log/job_done_success")
    job = entry["protoPayload"]["metadata"]["jobChange"]["job"]
    job_id = f"baton_dev_{run_id}_{job_key}_{attempt}"
    job["jobName"] = f"projects/baton-local/jobs/{job_id}"
    job["jobConfig"]["labels"].update(baton_env="dev", baton_run=run_id, baton_job=job_key, baton_attempt=str(attempt))
    if error:
        job["jobStatus"]["errorResult"] = error
    return entry


def start(core: Core) -> str:
    response = client("start_manifest").post("/", json={"manifest": "elt_daily", "params": {"run_date": "2026-11-27"}})
    assert response.status_code == 200, response.get_json()
    return str(response.get_json()["run_id"])


def test_start_manifest_starts_a_run_and_submits_its_roots(core: Core) -> None:
    run_id = start(core)
    assert re.fullmatch(r"[0-9a-f]{32}", run_id)
    assert core.submitter.submitted_keys() == ["land_raw"]
    assert core.store.runs[run_id].status == RunStatus.RUNNING


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"not json", 400, "not JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (b'{"params": {}}', 400, "'manifest' must be a non-empty string"),
        (b'{"manifest": 7}', 400, "'manifest' must be a non-empty string"),
        (b'{"manifest": "elt_daily", "params": []}', 400, "'params' must be an object"),
        (b'{"manifest": "elt_daily", "extra": 1}', 400, "unknown field(s): extra"),
        (b'{"manifest": "nope"}', 404, "manifest 'nope' not found"),
        (b'{"manifest": "elt_daily", "params": {"run_date": "yesterday"}}', 400, "param 'run_date': expected a date"),
        (b'{"manifest": "elt_daily", "params": {"colour": "red"}}', 400, "unknown param 'colour'"),
        (b'{"manifest": "' + b"x" * 70_000 + b'"}', 413, "the limit is"),
    ],
)
def test_start_manifest_rejects_bad_input_without_writing(core: Core, body: bytes, status: int, needle: str) -> None:
    response = client("start_manifest").post("/", data=body, content_type="application/json")
    assert response.status_code == status
    assert needle in response.get_json()["message"]
    assert core.store.runs == {} and core.submitter.requests == []


def test_start_manifest_only_takes_post(core: Core) -> None:
    assert client("start_manifest").get("/").status_code == 405


def test_completion_as_raw_push_releases_the_next_layer(core: Core) -> None:
    run_id = start(core)
    response = client("bigquery_job_completed").post("/", data=push_body(completion_entry(run_id, "land_raw")))
    assert response.status_code == 200
    # Dependents are released in key order, as Spanner reads the edges.
    assert response.get_json() == {"verdict": "recorded", "released": ["hist_customers", "hist_orders", "hist_products"]}
    assert core.store.jobs[(run_id, "land_raw")].status == JobStatus.SUCCEEDED


def test_completion_as_a_binary_cloud_event(core: Core) -> None:
    run_id = start(core)
    entry = completion_entry(run_id, "land_raw")
    data = {"message": {"data": base64.b64encode(json.dumps(entry).encode()).decode(), "messageId": "9"}, "subscription": "s"}
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-source": "//pubsub.googleapis.com/projects/p/topics/t",
        "ce-id": "9",
    }
    response = client("bigquery_job_completed").post("/", json=data, headers=headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["verdict"] == "recorded"


def test_failed_job_is_recorded_and_skips_downstream(core: Core) -> None:
    run_id = start(core)
    error = {"code": 3, "message": "Syntax error"}
    response = client("bigquery_job_completed").post("/", data=push_body(completion_entry(run_id, "land_raw", error=error)))
    assert response.status_code == 200
    assert core.store.jobs[(run_id, "land_raw")].status == JobStatus.FAILED
    assert core.store.runs[run_id].status == RunStatus.FAILED
    assert core.store.runs[run_id].skipped_jobs == 8


def test_event_for_a_job_baton_did_not_start_is_acknowledged_and_changes_nothing(core: Core) -> None:
    run_id = start(core)
    before = (dict(core.store.runs), dict(core.store.jobs))
    unknown = completion_entry("0" * 32, "land_raw")
    response = client("bigquery_job_completed").post("/", data=push_body(unknown))
    assert (response.status_code, response.get_json()["verdict"]) == (200, "unknown_run")
    foreign = load_fixture("audit_log/no_baton_labels")
    response = client("bigquery_job_completed").post("/", data=push_body(foreign))
    assert (response.status_code, response.get_json()["ignored"]) == (200, "not_baton_job")
    assert (core.store.runs, core.store.jobs) == before
    assert run_id in core.store.runs


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"not json at all", "not JSON"),
        (b"{}", "message"),
        (b'{"message": "hello"}', "message"),
        (b'{"message": {"data": 42}}', "data"),
        (b'{"message": {"data": "***not base64***"}}', "base64"),
        (json.dumps({"message": {"data": base64.b64encode(b"\xff\xfe").decode()}}).encode(), "UTF-8"),
        (json.dumps({"message": {"data": base64.b64encode(b"{broken").decode()}}).encode(), "JSON"),
    ],
)
def test_malformed_messages_get_one_line_and_are_dropped(
    core: Core, body: bytes, needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    response = client("bigquery_job_completed").post("/", data=body, content_type="application/json")
    assert response.status_code == 200, "redelivering the same bytes cannot help"
    assert response.get_json()["dropped"] == "malformed"
    assert needle.lower() in response.get_json()["message"].lower()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [line["message"] for line in lines] == ["malformed message dropped"]
    assert core.store.runs == {}


@pytest.mark.parametrize("fixture", ["legacy_job_completed", "job_insertion", "job_change_running", "other_environment"])
def test_other_audit_entries_are_recognised_and_acknowledged(core: Core, fixture: str) -> None:
    response = client("bigquery_job_completed").post("/", data=push_body(load_fixture(f"audit_log/{fixture}")))
    assert response.status_code == 200
    assert "ignored" in response.get_json()


def test_storage_outage_asks_pub_sub_to_redeliver(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    from baton.errors import TransientError

    run_id = start(core)

    def unavailable(fn: Any) -> Any:
        raise TransientError("Spanner: 503 unavailable")

    monkeypatch.setattr(core.store, "transact", unavailable)
    response = client("bigquery_job_completed").post("/", data=push_body(completion_entry(run_id, "land_raw")))
    assert response.status_code == 503


def test_requirements_txt_pins_exactly_the_runtime_dependencies() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = (REPO / "handlers" / "requirements.txt").read_text().splitlines()
    pinned = [line for line in lines if line and not line.startswith("#")]
    assert sorted(pinned, key=str.lower) == sorted(declared, key=str.lower)
    assert all("==" in line for line in pinned)


class RefusingBigQuery:
    """Stands in for bigquery.Client under the real BigQuery adapter: jobs.insert raises `error` for job IDs
    containing `match`, as the real client raises what BigQuery answers."""

    project = "baton-local"

    def __init__(self, match: str, error: Exception) -> None:
        self.match, self.error = match, error
        self.inserted: list[str] = []

    def query(self, sql: str, *, job_id: str, **kwargs: Any) -> None:
        if self.match in job_id:
            raise self.error
        self.inserted.append(job_id)


def with_bigquery(core: Core, client: RefusingBigQuery) -> None:
    from baton.adapters.bigquery import BigQuerySubmitter

    core.orchestrator.submitter = BigQuerySubmitter(client, "US")  # type: ignore[arg-type]


def test_a_rate_limited_insert_asks_pub_sub_to_redeliver(core: Core) -> None:
    from google.api_core import exceptions as gexc

    run_id = start(core)
    bigquery = RefusingBigQuery("_hist_orders_", gexc.Forbidden("Exceeded rate limits", errors=[{"reason": "rateLimitExceeded"}]))
    with_bigquery(core, bigquery)
    response = client("bigquery_job_completed").post("/", data=push_body(completion_entry(run_id, "land_raw")))
    assert response.status_code == 503, response.get_json()
    assert response.get_json()["error"] == "TransientError"
    assert core.store.jobs[(run_id, "hist_orders")].status == JobStatus.READY, "left for the redelivery"


def test_an_insert_refused_for_good_fails_the_job_and_acknowledges(core: Core) -> None:
    from google.api_core import exceptions as gexc

    run_id = start(core)
    bigquery = RefusingBigQuery(
        "_hist_orders_", gexc.NotFound("Not found: Dataset baton-local:raw", errors=[{"reason": "notFound"}])
    )
    with_bigquery(core, bigquery)
    response = client("bigquery_job_completed").post("/", data=push_body(completion_entry(run_id, "land_raw")))
    assert response.status_code == 200, response.get_json()
    job = core.store.jobs[(run_id, "hist_orders")]
    assert (job.status, job.error_reason) == (JobStatus.FAILED, "notFound")
    assert {core.store.jobs[(run_id, key)].status for key in ("hist_customers", "hist_products")} == {JobStatus.SUBMITTED}
