"""BigQuery adapter: jobs.insert under Baton's deterministic job IDs. It never waits on a job."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.client_info import ClientInfo
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from baton.domain.bigquery_reasons import RATE_LIMIT_REASONS
from baton.domain.naming import LABEL_CHECK
from baton.domain.records import JobStats
from baton.domain.timing import TimeBudget
from baton.errors import JobRefused, TransientError
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
_DEFAULT_REASONS = {400: "invalid", 403: "accessDenied", 404: "notFound"}


def error_reason(exc: gexc.GoogleAPICallError) -> str:
    """BigQuery's reason for a refused request: the first `errors[].reason` of the response, else by status."""
    for error in exc.errors or ():
        if isinstance(error, Mapping) and isinstance(error.get("reason"), str) and error["reason"]:
            return str(error["reason"])
    return _DEFAULT_REASONS.get(int(exc.code or 0), "invalid")


def classify(exc: gexc.GoogleAPICallError, what: str, job_id: str) -> Exception:
    """A failed request -> TransientError (5xx, 429, 403 rateLimitExceeded/quotaExceeded: try again later)
    or JobRefused (any other 4xx: the same request can never succeed)."""
    if isinstance(exc, _TRANSIENT) or (isinstance(exc, gexc.Forbidden) and error_reason(exc) in RATE_LIMIT_REASONS):
        return TransientError(f"BigQuery {what} {job_id}: {exc}")
    if isinstance(exc, gexc.ClientError):
        return JobRefused(job_id, error_reason(exc), exc.message or str(exc))
    return TransientError(f"BigQuery {what} {job_id}: {exc}")


def _parameter(param: QueryParameter) -> bigquery.ScalarQueryParameter:
    return bigquery.ScalarQueryParameter(param.name, param.type, param.value)


class BigQuerySubmitter(JobSubmitter):
    """Every call (jobs.insert, jobs.get, getQueryResults, tables.get, cancel) is bounded by the function's time budget:
    the client's DEFAULT_RETRY would retry for 600 s, long past the function's timeout."""

    def __init__(self, client: bigquery.Client, location: str, budget: TimeBudget | None = None) -> None:
        self.client = client
        self.location = location
        self.budget = budget or TimeBudget()
        self.retry = bigquery.DEFAULT_RETRY.with_timeout(self.budget.call_deadline_s)
        self.timeout = self.budget.request_timeout_s

    @classmethod
    def connect(
        cls, project: str, location: str, endpoint: str | None = None, budget: TimeBudget | None = None
    ) -> BigQuerySubmitter:
        """`endpoint` points at a local BigQuery; it takes no credentials."""
        extra: dict[str, Any] = {}
        if endpoint:
            extra = {"client_options": ClientOptions(api_endpoint=endpoint), "credentials": AnonymousCredentials()}
        client = bigquery.Client(project=project, location=location, client_info=ClientInfo(user_agent=USER_AGENT), **extra)
        return cls(client, location, budget)

    def submit(self, request: SubmitRequest) -> SubmitOutcome:
        try:
            if request.load is not None or request.copy is not None or request.extract is not None:
                self._submit_transfer(request)
            else:
                config = bigquery.QueryJobConfig(
                    query_parameters=[_parameter(p) for p in request.parameters],
                    labels=dict(request.labels),
                )
                if request.destination:
                    config.destination = self._table(request.destination)
                    config.write_disposition = request.write_disposition
                # An explicit job_id makes a Conflict surface instead of being "recovered" by the client.
                self.client.query(
                    request.sql,
                    job_config=config,
                    job_id=request.job_id,
                    location=self.location,
                    job_retry=None,
                    retry=self.retry,
                    timeout=self.timeout,
                )
        except gexc.Conflict:
            return SubmitOutcome.ALREADY_EXISTS
        except gexc.GoogleAPICallError as exc:
            raise classify(exc, "jobs.insert", request.job_id) from exc
        return SubmitOutcome.SUBMITTED

    def _table(self, table: str) -> bigquery.TableReference:
        return bigquery.TableReference.from_string(table, default_project=self.client.project)

    def _submit_transfer(self, request: SubmitRequest) -> None:
        """A load, copy or extract job under Baton's job ID and labels; like a query, nothing waits on it."""
        job_id, location = request.job_id, self.location
        if request.load is not None:
            load = request.load
            assert request.destination is not None
            load_config = bigquery.LoadJobConfig(
                labels=dict(request.labels),
                source_format=load.source_format,
                write_disposition=request.write_disposition,
                autodetect=load.autodetect or None,
            )
            if load.schema:
                load_config.schema = [bigquery.SchemaField(name, type_) for name, type_ in load.schema]
            if load.source_format == "CSV":
                load_config.skip_leading_rows = load.skip_leading_rows
            self.client.load_table_from_uri(
                list(load.source_uris),
                self._table(request.destination),
                job_config=load_config,
                job_id=job_id,
                location=location,
                retry=self.retry,
                timeout=self.timeout,
            )
        elif request.copy is not None:
            assert request.destination is not None
            copy_config = bigquery.CopyJobConfig(labels=dict(request.labels), write_disposition=request.write_disposition)
            sources = [self._table(source) for source in request.copy.source_tables]
            self.client.copy_table(
                sources,
                self._table(request.destination),
                job_config=copy_config,
                job_id=job_id,
                location=location,
                retry=self.retry,
                timeout=self.timeout,
            )
        else:
            extract = request.extract
            assert extract is not None
            extract_config = bigquery.ExtractJobConfig(labels=dict(request.labels), destination_format=extract.destination_format)
            if extract.destination_format == "CSV":
                extract_config.print_header = extract.print_header
            self.client.extract_table(
                self._table(extract.source_table),
                list(extract.destination_uris),
                job_config=extract_config,
                job_id=job_id,
                location=location,
                retry=self.retry,
                timeout=self.timeout,
            )

    def cancel(self, job_id: str) -> None:
        try:
            self.client.cancel_job(job_id, location=self.location, retry=self.retry, timeout=self.timeout)
        except (gexc.NotFound, gexc.BadRequest):
            return  # never submitted, or already finished: nothing to stop

    def lookup(self, job_id: str) -> RemoteJob | None:
        try:
            job = self.client.get_job(job_id, location=self.location, retry=self.retry, timeout=self.timeout)
        except gexc.NotFound:
            return None
        except gexc.GoogleAPICallError as exc:
            _raise_transient(exc, "jobs.get", job_id)
            raise
        error = job.error_result or {}
        if not isinstance(job, bigquery.QueryJob):  # a load, copy or extract job: its destination is in its spec
            return RemoteJob(
                job_id=job_id,
                state=RemoteState(job.state),
                error_reason=error.get("reason"),
                error_message=error.get("message"),
                stats=JobStats(start_time=job.started, end_time=job.ended),
            )
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
        """jobs.get, then getQueryResults' first page: called for a failed check, which is DONE. Both calls
        are bounded like every other one; a refusal that is not transient raises as the client's error."""
        try:
            job = self.client.get_job(job_id, location=self.location, retry=self.retry, timeout=self.timeout)
            if not isinstance(job, bigquery.QueryJob) or job.state != "DONE" or job.error_result:
                return []
            rows = job.result(
                max_results=limit, page_size=limit, retry=self.retry, timeout=self.budget.call_deadline_s, job_retry=None
            )
            return [dict(row.items()) for row in itertools.islice(rows, limit)]
        except gexc.NotFound:
            return []
        except gexc.GoogleAPICallError as exc:
            _raise_transient(exc, "getQueryResults", job_id)
            raise

    def table_size(self, table_ref: str) -> TableSize | None:
        """tables.get: rows and logical bytes now; None if the table is gone."""
        try:
            table = self.client.get_table(table_ref, retry=self.retry, timeout=self.timeout)
        except gexc.NotFound:
            return None
        except gexc.GoogleAPICallError as exc:
            _raise_transient(exc, "tables.get", table_ref)
            raise
        return TableSize(rows=table.num_rows, bytes=table.num_bytes)

    def _check_rows(self, job: bigquery.QueryJob) -> int | None:
        """How many rows a finished data check returned: its verdict. The job is DONE, so nothing waits."""
        if job.state != "DONE" or job.error_result or LABEL_CHECK not in (job.labels or {}):
            return None
        total = job.result(max_results=0, retry=self.retry, timeout=self.budget.call_deadline_s, job_retry=None).total_rows
        return int(total) if total is not None else None


def _table_id(table: bigquery.TableReference | None) -> str | None:
    return f"{table.project}.{table.dataset_id}.{table.table_id}" if table is not None else None


def _raise_transient(exc: gexc.GoogleAPICallError, call: str, name: str) -> None:
    """A read's failure that a retry may cure becomes TransientError; the caller re-raises any other as it is."""
    failure = classify(exc, call, name)
    if isinstance(failure, TransientError):
        raise failure from exc
