"""BigQuery adapter: jobs.insert under Baton's deterministic job IDs. It never waits on a job."""

from __future__ import annotations

import itertools
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.client_info import ClientInfo
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from baton.domain.naming import LABEL_CHECK
from baton.domain.records import JobStats
from baton.errors import TransientError
from baton.service.ports import (
    JobSubmitter,
    QueryParameter,
    RemoteJob,
    RemoteState,
    SubmitOutcome,
    SubmitRequest,
    TableSize,
)

USER_AGENT = "baton-handlers/0.1"
_TRANSIENT = (gexc.ServiceUnavailable, gexc.InternalServerError, gexc.TooManyRequests, gexc.BadGateway, gexc.GatewayTimeout)


def _parameter(param: QueryParameter) -> bigquery.ScalarQueryParameter:
    return bigquery.ScalarQueryParameter(param.name, param.type, param.value)


class BigQuerySubmitter(JobSubmitter):
    def __init__(self, client: bigquery.Client, location: str) -> None:
        self.client = client
        self.location = location

    @classmethod
    def connect(cls, project: str, location: str, endpoint: str | None = None) -> BigQuerySubmitter:
        """`endpoint` points at a local BigQuery; it takes no credentials."""
        extra: dict[str, Any] = {}
        if endpoint:
            extra = {"client_options": ClientOptions(api_endpoint=endpoint), "credentials": AnonymousCredentials()}
        client = bigquery.Client(project=project, location=location, client_info=ClientInfo(user_agent=USER_AGENT), **extra)
        return cls(client, location)

    def submit(self, request: SubmitRequest) -> SubmitOutcome:
        config = bigquery.QueryJobConfig(
            query_parameters=[_parameter(p) for p in request.parameters],
            labels=dict(request.labels),
        )
        if request.destination:
            config.destination = bigquery.TableReference.from_string(request.destination, default_project=self.client.project)
            config.write_disposition = request.write_disposition
        try:
            # An explicit job_id makes a Conflict surface instead of being "recovered" by the client.
            self.client.query(request.sql, job_config=config, job_id=request.job_id, location=self.location, job_retry=None)
        except gexc.Conflict:
            return SubmitOutcome.ALREADY_EXISTS
        except _TRANSIENT as exc:
            raise TransientError(f"BigQuery jobs.insert {request.job_id}: {exc}") from exc
        return SubmitOutcome.SUBMITTED

    def cancel(self, job_id: str) -> None:
        try:
            self.client.cancel_job(job_id, location=self.location)
        except (gexc.NotFound, gexc.BadRequest):
            return  # never submitted, or already finished: nothing to stop

    def lookup(self, job_id: str) -> RemoteJob | None:
        try:
            job = self.client.get_job(job_id, location=self.location)
        except gexc.NotFound:
            return None
        error = job.error_result or {}
        if not isinstance(job, bigquery.QueryJob):
            return RemoteJob(job_id=job_id, state=RemoteState(job.state), error_reason=error.get("reason"))
        return RemoteJob(
            job_id=job_id,
            state=RemoteState(job.state),
            error_reason=error.get("reason"),
            error_message=error.get("message"),
            stats=JobStats(
                total_bytes_processed=job.total_bytes_processed,
                total_bytes_billed=job.total_bytes_billed,
                total_slot_ms=job.slot_millis,
                rows_affected=job.num_dml_affected_rows,
                destination_table=_table_id(job.destination),
                start_time=job.started,
                end_time=job.ended,
                referenced_tables=tuple(f"{t.project}.{t.dataset_id}.{t.table_id}" for t in job.referenced_tables or ()),
            ),
            output_rows=self._check_rows(job),
        )

    def sample_rows(self, job_id: str, limit: int) -> list[dict[str, Any]]:
        """jobs.getQueryResults of a finished query, first page only: called for a failed check, which is DONE."""
        try:
            job = self.client.get_job(job_id, location=self.location)
            if not isinstance(job, bigquery.QueryJob) or job.state != "DONE" or job.error_result:
                return []
            rows = job.result(max_results=limit, page_size=limit, timeout=60, job_retry=None)
            return [dict(row.items()) for row in itertools.islice(rows, limit)]
        except gexc.NotFound:
            return []
        except _TRANSIENT as exc:
            raise TransientError(f"BigQuery getQueryResults {job_id}: {exc}") from exc

    def table_size(self, table_ref: str) -> TableSize | None:
        """tables.get: rows and logical bytes now; None if the table is gone."""
        try:
            table = self.client.get_table(table_ref)
        except gexc.NotFound:
            return None
        except _TRANSIENT as exc:
            raise TransientError(f"BigQuery tables.get {table_ref}: {exc}") from exc
        return TableSize(rows=table.num_rows, bytes=table.num_bytes)

    def _check_rows(self, job: bigquery.QueryJob) -> int | None:
        """How many rows a finished data check returned: its verdict. The job is DONE, so nothing waits."""
        if job.state != "DONE" or job.error_result or LABEL_CHECK not in (job.labels or {}):
            return None
        total = job.result(max_results=0, timeout=60, job_retry=None).total_rows
        return int(total) if total is not None else None


def _table_id(table: bigquery.TableReference | None) -> str | None:
    return f"{table.project}.{table.dataset_id}.{table.table_id}" if table is not None else None
