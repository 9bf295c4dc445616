"""What an operator needs later and only BigQuery knows now, read before a completion is recorded.

A check's completion event carries only its row count; the offending rows are in the
check's own result. They are read here, only for a check that found rows, so a passing
run costs no extra call. Likewise a job's event says which table it wrote but not how big
that table now is: one tables.get after a successful write, for the catalog. Reading is
best effort: a failure is logged and the completion is recorded without it, since no
decision depends on it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from baton import structured_log
from baton.domain.lineage import LineageEvent, job_finished, job_started
from baton.domain.records import CheckCompletion, Completion, JobRecord, RunRecord
from baton.domain.samples import MAX_SAMPLE_ROWS, bounded_sample
from baton.service.dependencies import Dependencies


def observe(deps: Dependencies, event: Completion | CheckCompletion) -> Completion | CheckCompletion:
    if isinstance(event, CheckCompletion) and event.found_rows and event.sample_rows is None:
        return _with_sample_rows(deps, event)
    if isinstance(event, Completion) and event.error is None and event.stats.destination_table and event.stats.table_rows is None:
        return _with_table_size(deps, event, event.stats.destination_table)
    return event


def _with_table_size(deps: Dependencies, event: Completion, table: str) -> Completion:
    try:
        size = deps.submitter.table_size(table)
    except Exception as exc:  # the catalog's numbers, not state
        _log_unread(
            "could not read the size of the table a job wrote", event.run_id, event.job_key, event.attempt, exc, table=table
        )
        return event
    if size is None:
        return event
    return replace(event, stats=replace(event.stats, table_rows=size.rows, table_bytes=size.bytes))


def _log_unread(message: str, run_id: str, job_key: str, attempt: int, exc: Exception, **fields: object) -> None:
    error = f"{type(exc).__name__}: {exc}"
    structured_log.warning(message, run_id=run_id, job_key=job_key, attempt=attempt, error=error, **fields)


def _with_sample_rows(deps: Dependencies, event: CheckCompletion) -> CheckCompletion:
    try:
        rows = deps.submitter.sample_rows(event.bigquery_job_id, MAX_SAMPLE_ROWS)
    except Exception as exc:  # evidence, not state: never let it block the verdict
        message = "could not read a failed check's offending rows"
        fields = {"check": event.check_name, "bigquery_job_id": event.bigquery_job_id}
        _log_unread(message, event.run_id, event.job_key, event.attempt, exc, **fields)
        return event
    return replace(event, sample_rows=bounded_sample(rows))


# Lineage is emitted after everything else an invocation does: importing the openlineage-python client
# takes a new instance about a second (1.3 s measured on a loaded 2-core machine; its transports pull in
# httpx and asyncio), paid once per instance on its first emit.


def lineage_started(deps: Dependencies, run: RunRecord, job: JobRecord, now: dt.datetime) -> None:
    """OpenLineage START of a job BigQuery accepted."""
    _emit(deps, job_started(run, job, now))


def lineage_finished(deps: Dependencies, run: RunRecord, job: JobRecord, event: Completion, now: dt.datetime) -> None:
    """OpenLineage COMPLETE or FAIL of the attempt `event` reports (a retry's job row has moved on to the next)."""
    error = event.error.to_text() if event.error else None
    _emit(deps, job_finished(run, job, event.bigquery_job_id, event.stats, error, now))


def _emit(deps: Dependencies, event: LineageEvent) -> None:
    try:
        deps.lineage.emit(event)
    except Exception as exc:  # lineage is a report: a transport that fails must not fail the job
        structured_log.warning(
            "could not emit an OpenLineage event",
            event_type=event.event_type,
            bigquery_job_id=event.bigquery_job_id,
            error=f"{type(exc).__name__}: {exc}",
        )
