"""What the BigQuery adapter reads for operators, against the local BigQuery: a finished query's first rows."""

from __future__ import annotations

import secrets
import time

import pytest

from baton.adapters.bigquery import BigQuerySubmitter
from baton.domain.naming import baton_labels
from baton.service.ports import SubmitRequest, TableSize
from devstack.bigquery_facade import LocalBigQuery
from tests.devstack.conftest import CapturingPublisher
from tests.devstack.test_bigquery_facade import PROJECT

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def submitter(local_bigquery: LocalBigQuery) -> BigQuerySubmitter:
    return BigQuerySubmitter.connect(PROJECT, "US", local_bigquery.endpoint)


def test_sample_rows_reads_the_first_rows_of_a_finished_query(submitter: BigQuerySubmitter) -> None:
    job_id = f"observe_{secrets.token_hex(4)}"
    sql = "SELECT n AS order_id, CONCAT('row ', CAST(n AS STRING)) AS note FROM UNNEST(GENERATE_ARRAY(1, 25)) AS n ORDER BY n"
    submitter.submit(SubmitRequest(job_id=job_id, sql=sql, labels={}))
    submitter.client.get_job(job_id, location="US").result()  # the test waits; the handler reads only DONE checks
    rows = submitter.sample_rows(job_id, 10)
    assert rows == [{"order_id": n, "note": f"row {n}"} for n in range(1, 11)]
    assert submitter.sample_rows("no_such_job", 10) == []


def test_the_local_bigquery_meters_what_a_query_read_and_the_size_of_what_it_wrote(
    submitter: BigQuerySubmitter, published: CapturingPublisher
) -> None:
    dataset = f"observe_{secrets.token_hex(3)}"
    submitter.client.create_dataset(dataset)
    source = f"{PROJECT}.{dataset}.source"
    numbers = "SELECT n, CONCAT('name ', CAST(n AS STRING)) AS name FROM UNNEST(GENERATE_ARRAY(1, 100)) AS n"
    create = f"CREATE TABLE `{source}` AS {numbers}"
    submitter.client.query(create).result()
    source_bytes = sum(8 + 2 + len(f"name {n}") for n in range(1, 101))
    assert submitter.table_size(source) == TableSize(rows=100, bytes=source_bytes)
    assert submitter.table_size(f"{PROJECT}.{dataset}.missing") is None

    job_id = f"observe_{secrets.token_hex(4)}"
    sql = f"SELECT n, EXTRACT(YEAR FROM CURRENT_DATE()) AS y FROM {dataset}.source AS s WHERE n > 90"
    labels = baton_labels("dev", secrets.token_hex(16), "copy", 1)
    request = SubmitRequest(job_id, sql, labels, destination=f"{dataset}.copy", write_disposition="WRITE_TRUNCATE")
    submitter.submit(request)
    submitter.client.get_job(job_id, location="US").result()
    remote = submitter.lookup(job_id)
    assert remote is not None and remote.stats.referenced_tables == (source,)
    assert remote.stats.total_bytes_processed == source_bytes
    assert remote.stats.total_bytes_billed == 10 * 2**20, "at least 10 MiB per table read"
    assert submitter.table_size(f"{PROJECT}.{dataset}.copy") == TableSize(rows=10, bytes=10 * 16)
    deadline = time.monotonic() + 10
    while not (done := [e for e in published.for_job(job_id) if "jobChange" in e["protoPayload"]["metadata"]]):
        assert time.monotonic() < deadline, "the audit entry never came"
        time.sleep(0.1)
    entry = done[-1]
    parsed_stats = entry["protoPayload"]["metadata"]["jobChange"]["job"]["jobStats"]["queryStats"]
    assert parsed_stats["referencedTables"] == [f"projects/{PROJECT}/datasets/{dataset}/tables/source"]
    assert parsed_stats["totalProcessedBytes"] == str(source_bytes)
