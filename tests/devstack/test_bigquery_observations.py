"""What the BigQuery adapter reads for operators, against the local BigQuery: a finished query's first rows."""

from __future__ import annotations

import secrets

import pytest

from baton.adapters.bigquery import BigQuerySubmitter
from baton.service.ports import SubmitRequest
from devstack.bigquery_facade import LocalBigQuery
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
