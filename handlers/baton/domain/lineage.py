"""Lineage of one BigQuery job of a run, as OpenLineage describes it: a run of a job that reads and writes datasets.

Pure and client-free: adapters/openlineage.py turns a `LineageEvent` into the openlineage-python
client's classes. Names follow OpenLineage's naming conventions: BigQuery datasets live in the
namespace `bigquery` as `project.dataset.table`; a job is `<manifest>.<job key>` in the namespace
`baton-<environment>`. OpenLineage run IDs are UUIDs: each attempt's is derived from its BigQuery job
ID (so its START and COMPLETE match), and the parent run is the Baton run (its ID is 32 hex digits).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from baton.domain.records import JobRecord, JobStats, RunRecord

DATASET_NAMESPACE = "bigquery"
PRODUCER = "urn:baton:handlers"  # a URI, as OpenLineage asks; Baton publishes no source URL of its own
_ATTEMPT_NAMESPACE = uuid.UUID("5a4f0d2e-8c1b-4f3a-9e77-0b9a1f6c2d41")  # fixed: the same job ID gives the same run ID


@dataclass(frozen=True)
class OutputTable:
    name: str
    rows: int | None = None
    bytes: int | None = None


@dataclass(frozen=True)
class LineageEvent:
    event_type: str  # START | COMPLETE | FAIL
    time: dt.datetime
    run_id: str  # this attempt's OpenLineage run ID (UUID)
    parent_run_id: str  # the Baton run, as a UUID
    job_namespace: str
    job_name: str
    parent_job_name: str  # the manifest
    bigquery_job_id: str
    sql: str
    inputs: tuple[str, ...] = ()
    outputs: tuple[OutputTable, ...] = ()
    error: str | None = None


def attempt_run_id(bigquery_job_id: str) -> str:
    return str(uuid.uuid5(_ATTEMPT_NAMESPACE, bigquery_job_id))


def _event(event_type: str, run: RunRecord, job: JobRecord, bigquery_job_id: str, now: dt.datetime) -> LineageEvent:
    return LineageEvent(
        event_type=event_type,
        time=now,
        run_id=attempt_run_id(bigquery_job_id),
        parent_run_id=str(uuid.UUID(hex=run.run_id)),
        job_namespace=f"baton-{run.environment}",
        job_name=f"{run.manifest_name}.{job.job_key}",
        parent_job_name=run.manifest_name,
        bigquery_job_id=bigquery_job_id,
        sql=job.spec.sql,
    )


def job_started(run: RunRecord, job: JobRecord, now: dt.datetime) -> LineageEvent:
    """Submitted to BigQuery: what it will write is known; what it reads, only once BigQuery says."""
    assert job.bigquery_job_id is not None
    started = _event("START", run, job, job.bigquery_job_id, now)
    outputs = (OutputTable(job.spec.destination),) if job.spec.destination else ()
    return LineageEvent(**{**started.__dict__, "outputs": outputs})


def job_finished(
    run: RunRecord, job: JobRecord, bigquery_job_id: str, stats: JobStats, error: str | None, now: dt.datetime
) -> LineageEvent:
    """BigQuery finished the attempt: the tables it read, the table it wrote and its size, or its error."""
    finished = _event("FAIL" if error else "COMPLETE", run, job, bigquery_job_id, now)
    destination = stats.destination_table or job.spec.destination
    outputs = (OutputTable(destination, stats.table_rows, stats.table_bytes),) if destination and not error else ()
    return LineageEvent(**{**finished.__dict__, "inputs": stats.referenced_tables, "outputs": outputs, "error": error})
