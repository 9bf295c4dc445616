"""Load, copy and extract jobs on the local BigQuery, submitted by Baton's own adapter, with a real Cloud Storage emulator.

Each job gets the façade's job control plane (409 for a duplicate ID, labels, states) and a
completion audit entry in BigQuery's shape for its type, routed by the sink filter and read
by Baton's own decoder.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from baton.adapters.bigquery import BigQuerySubmitter
from baton.domain.naming import baton_labels
from baton.domain.specs import CopySpec, ExtractSpec, LoadSpec
from baton.entrypoints.audit_log import ParsedCompletion, parse_log_entry
from baton.service.ports import SubmitOutcome, SubmitRequest
from devstack.bigquery_engine import BigQueryEngine
from devstack.bigquery_facade import LocalBigQuery
from devstack.cloud_storage import StorageClient, StorageEmulator, upload_folder
from devstack.processes import ProcessSupervisor
from tests.devstack.conftest import SINK_FILTER, CapturingPublisher

pytestmark = pytest.mark.integration

PROJECT = "baton-local"
ORDERS_CSV = 'order_id,customer,amount,ordered_on\n1,Aroha,12.5,2031-05-01\n2,Bruno,,2031-05-01\n3,"Chiara, Jr",7,2031-05-02\n'


@pytest.fixture(scope="module")
def storage(supervisor: ProcessSupervisor) -> Iterator[StorageEmulator]:
    emulator = StorageEmulator.start(supervisor, name="storage-transfer-tests")
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="module")
def published() -> CapturingPublisher:
    return CapturingPublisher()


@pytest.fixture(scope="module")
def local(
    bigquery_engine: BigQueryEngine,
    storage: StorageEmulator,
    published: CapturingPublisher,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LocalBigQuery]:
    local = LocalBigQuery.start(
        tmp_path_factory.mktemp("transfer-facade"),
        SINK_FILTER,
        published,
        default_duration_s=0.1,
        engine_endpoint=bigquery_engine.endpoint,
        storage_endpoint=storage.endpoint,
    )
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="module")
def client(local: LocalBigQuery) -> bigquery.Client:
    client = bigquery.Client(project=PROJECT, credentials=AnonymousCredentials(), client_options={"api_endpoint": local.endpoint})
    for dataset in ("xfer_landing", "xfer_consume"):
        client.create_dataset(dataset, exists_ok=True)
    return client


@pytest.fixture(scope="module")
def submitter(local: LocalBigQuery) -> BigQuerySubmitter:
    return BigQuerySubmitter.connect(PROJECT, "US", endpoint=local.endpoint)


@pytest.fixture(scope="module")
def seeded(storage: StorageEmulator, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("seed")
    (folder / "orders").mkdir()
    (folder / "orders" / "2031-05-01.csv").write_text(ORDERS_CSV)
    (folder / ".hidden").write_text("not uploaded")
    written = upload_folder(storage.client(), folder, "gs://baton-seeds/shop")
    assert written == ["gs://baton-seeds/shop/orders/2031-05-01.csv"]
    return "gs://baton-seeds/shop/orders/*.csv"


def _request(job: str, **fields: Any) -> SubmitRequest:
    run = secrets.token_hex(16)
    job_id = f"baton_dev_{run}_{job}_1"
    return SubmitRequest(job_id=job_id, sql="", labels=baton_labels("dev", run, job, 1), **fields)


def _done_entry(local: LocalBigQuery, published: CapturingPublisher, job_id: str) -> dict[str, Any]:
    assert local.facade.wait_done(PROJECT, job_id, timeout_s=30)
    local.bridge.flush(timeout_s=10)
    entries = published.for_job(job_id)
    assert len(entries) == 1, f"one routed entry (the DONE one) for {job_id}, got {len(entries)}"
    return entries[0]


def _rows(client: bigquery.Client, sql: str) -> list[dict[str, Any]]:
    return [dict(row.items()) for row in client.query(sql).result()]


LOAD = LoadSpec(
    source_uris=(),
    source_format="CSV",
    schema=(("order_id", "INT64"), ("customer", "STRING"), ("amount", "FLOAT64"), ("ordered_on", "DATE")),
    skip_leading_rows=1,
)


def test_a_load_job_reads_the_bucket_casts_to_the_schema_and_is_audited_as_an_import(
    local: LocalBigQuery, client: bigquery.Client, submitter: BigQuerySubmitter, published: CapturingPublisher, seeded: str
) -> None:
    load = LoadSpec((*LOAD.source_uris, seeded), LOAD.source_format, LOAD.schema, skip_leading_rows=1)
    request = _request("land_orders", destination="xfer_landing.orders", write_disposition="WRITE_TRUNCATE", load=load)

    assert submitter.submit(request) == SubmitOutcome.SUBMITTED
    assert submitter.submit(request) == SubmitOutcome.ALREADY_EXISTS  # the same job ID: BigQuery's 409

    entry = _done_entry(local, published, request.job_id)
    job = entry["protoPayload"]["metadata"]["jobChange"]["job"]
    assert job["jobConfig"]["type"] == "IMPORT"
    load_config = job["jobConfig"]["loadConfig"]
    assert load_config["sourceUris"] == [seeded]
    assert load_config["destinationTable"] == f"projects/{PROJECT}/datasets/xfer_landing/tables/orders"
    assert load_config["writeDisposition"] == "WRITE_TRUNCATE"
    assert "queryConfig" not in job["jobConfig"]
    assert "queryStats" not in job["jobStats"]
    assert int(job["jobStats"]["loadStats"]["totalOutputBytes"]) == len(ORDERS_CSV)
    assert job["jobConfig"]["labels"] == dict(request.labels)

    parsed = parse_log_entry(entry, environment="dev")
    assert isinstance(parsed, ParsedCompletion)
    assert parsed.completion.error is None
    assert parsed.completion.stats.destination_table == f"{PROJECT}.xfer_landing.orders"

    rows = _rows(client, "SELECT order_id, customer, amount, ordered_on FROM xfer_landing.orders ORDER BY order_id")
    assert [row["customer"] for row in rows] == ["Aroha", "Bruno", "Chiara, Jr"]
    assert rows[1]["amount"] is None  # an empty CSV field is NULL
    assert str(rows[2]["ordered_on"]) == "2031-05-02"

    remote = client.get_job(request.job_id, location="US")
    assert isinstance(remote, bigquery.LoadJob)
    assert remote.output_rows == 3
    assert remote.labels == dict(request.labels)


def test_a_copy_job_copies_the_table_and_is_audited_as_a_table_copy(
    local: LocalBigQuery, client: bigquery.Client, submitter: BigQuerySubmitter, published: CapturingPublisher, seeded: str
) -> None:
    client.query("CREATE OR REPLACE TABLE xfer_landing.customers AS SELECT 1 AS id, 'Aroha' AS name").result()
    request = _request(
        "copy_customers",
        destination="xfer_consume.customers",
        write_disposition="WRITE_TRUNCATE",
        copy=CopySpec(("xfer_landing.customers",)),
    )
    assert submitter.submit(request) == SubmitOutcome.SUBMITTED
    job = _done_entry(local, published, request.job_id)["protoPayload"]["metadata"]["jobChange"]["job"]
    assert job["jobConfig"]["type"] == "COPY"
    assert job["jobConfig"]["tableCopyConfig"] == {
        "sourceTables": [f"projects/{PROJECT}/datasets/xfer_landing/tables/customers"],
        "destinationTable": f"projects/{PROJECT}/datasets/xfer_consume/tables/customers",
        "createDisposition": "CREATE_IF_NEEDED",
        "writeDisposition": "WRITE_TRUNCATE",
    }
    assert _rows(client, "SELECT id, name FROM xfer_consume.customers") == [{"id": 1, "name": "Aroha"}]


def test_an_extract_job_writes_the_file_and_is_audited_as_an_export(
    local: LocalBigQuery,
    client: bigquery.Client,
    submitter: BigQuerySubmitter,
    published: CapturingPublisher,
    storage: StorageEmulator,
) -> None:
    client.query("CREATE OR REPLACE TABLE xfer_consume.totals AS SELECT 'NZ' AS country, 3 AS orders").result()
    uri = "gs://baton-exports/totals/part-*.csv"
    request = _request("export_totals", extract=ExtractSpec("xfer_consume.totals", (uri,), "CSV"))
    assert submitter.submit(request) == SubmitOutcome.SUBMITTED
    job = _done_entry(local, published, request.job_id)["protoPayload"]["metadata"]["jobChange"]["job"]
    assert job["jobConfig"]["type"] == "EXPORT"
    assert job["jobConfig"]["extractConfig"] == {
        "destinationUris": [uri],
        "sourceTable": f"projects/{PROJECT}/datasets/xfer_consume/tables/totals",
    }
    assert "extractStats" in job["jobStats"]
    data = storage.client().download("baton-exports", "totals/part-000000000000.csv")
    assert data.decode() == "country,orders\nNZ,3\n"


def test_a_load_into_a_missing_dataset_or_from_a_missing_file_fails_with_not_found(
    local: LocalBigQuery, client: bigquery.Client, submitter: BigQuerySubmitter, published: CapturingPublisher, seeded: str
) -> None:
    no_dataset = _request("no_dataset", destination="nowhere.orders", load=LoadSpec((seeded,), "CSV", autodetect=True))
    no_file = _request(
        "no_file", destination="xfer_landing.x", load=LoadSpec(("gs://baton-seeds/missing.csv",), "CSV", autodetect=True)
    )
    for request in (no_dataset, no_file):
        assert submitter.submit(request) == SubmitOutcome.SUBMITTED
    missing_dataset = client.get_job(no_dataset.job_id, location="US")
    missing_file = client.get_job(no_file.job_id, location="US")
    for job in (no_dataset, no_file):
        _done_entry(local, published, job.job_id)
    missing_dataset.reload()
    missing_file.reload()
    assert missing_dataset.error_result == {"reason": "notFound", "message": f"Not found: Dataset {PROJECT}:nowhere"}
    assert missing_file.error_result == {"reason": "notFound", "message": "Not found: URI gs://baton-seeds/missing.csv"}


def test_upload_folder_refuses_a_file_and_storage_client_reads_the_emulator_variable(tmp_path: Path) -> None:
    client = StorageClient.from_env({"STORAGE_EMULATOR_HOST": "127.0.0.1:9"})
    assert client is not None and client.endpoint == "http://127.0.0.1:9"
    assert StorageClient.from_env({}) is None
    file = tmp_path / "one.csv"
    file.write_text("a\n")
    with pytest.raises(Exception, match="is not a folder"):
        upload_folder(client, file, "gs://bucket/x")


def test_json_and_parquet_loads_append_and_the_reconciler_reads_a_load_job(
    local: LocalBigQuery,
    client: bigquery.Client,
    submitter: BigQuerySubmitter,
    published: CapturingPublisher,
    storage: StorageEmulator,
    tmp_path: Path,
) -> None:
    import duckdb

    parquet = tmp_path / "events.parquet"
    duckdb.sql(f"COPY (SELECT 3 AS id, 'gamma' AS name) TO '{parquet}' (FORMAT PARQUET)")
    gcs = storage.client()
    gcs.ensure_bucket("baton-formats")
    gcs.upload("baton-formats", "events/a.json", b'{"id": 1, "name": "alpha"}\n{"id": 2, "name": null}\n')
    gcs.upload("baton-formats", "events/c.parquet", parquet.read_bytes())
    schema = (("id", "INT64"), ("name", "STRING"))
    first = _request(
        "land_json",
        destination="xfer_landing.events",
        write_disposition="WRITE_TRUNCATE",
        load=LoadSpec(("gs://baton-formats/events/*.json",), "NEWLINE_DELIMITED_JSON", autodetect=True),
    )
    second = _request(
        "land_parquet",
        destination="xfer_landing.events",
        write_disposition="WRITE_APPEND",
        load=LoadSpec(("gs://baton-formats/events/c.parquet",), "PARQUET", schema),
    )
    for request in (first, second):
        assert submitter.submit(request) == SubmitOutcome.SUBMITTED
        _done_entry(local, published, request.job_id)
    assert _rows(client, "SELECT id, name FROM xfer_landing.events ORDER BY id") == [
        {"id": 1, "name": "alpha"},
        {"id": 2, "name": None},
        {"id": 3, "name": "gamma"},
    ]
    remote = submitter.lookup(second.job_id)
    assert remote is not None and remote.state == "DONE" and remote.error_reason is None
    assert remote.stats.end_time is not None


def test_baton_upload_seeds_the_local_bucket_and_refuses_without_a_local_stack(storage: StorageEmulator, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from baton_cli.app import app

    (tmp_path / "customers").mkdir()
    (tmp_path / "customers" / "a.csv").write_text("id\n1\n")
    result = CliRunner().invoke(app, ["upload", str(tmp_path), "gs://baton-upload/seed/"], env=storage.env())
    assert result.exit_code == 0, result.output
    assert "gs://baton-upload/seed/customers/a.csv" in result.output
    assert storage.client().download("baton-upload", "seed/customers/a.csv") == b"id\n1\n"

    # BATON_PROJECT set: the command must not find a baton dev that may run in this checkout.
    alone = {"STORAGE_EMULATOR_HOST": "", "BATON_PROJECT": "acme-dev"}
    refused = CliRunner().invoke(app, ["upload", str(tmp_path), "gs://baton-upload/seed"], env=alone)
    assert refused.exit_code == 1
    assert "no local Cloud Storage (STORAGE_EMULATOR_HOST is unset): start `baton dev`" in refused.output
