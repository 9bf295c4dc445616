"""Handing released jobs and checks to BigQuery: jobs.insert under each one's deterministic ID, then the mark.

A crash between the commit that released a job and its insert leaves it READY;
a redelivered event or the reconciler submits it again under the same ID, and
BigQuery answers 409, which counts as submitted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from baton import structured_log
from baton.domain.naming import baton_labels, check_labels
from baton.domain.records import CheckRecord, JobRecord, RunRecord
from baton.domain.specs import BoundParam
from baton.domain.transitions.submission import mark_submitted
from baton.service.dependencies import Dependencies
from baton.service.observations import lineage_started
from baton.service.ports import QueryParameter, SubmitOutcome, SubmitRequest


def submit(deps: Dependencies, run: RunRecord, jobs: Sequence[JobRecord]) -> None:
    """jobs.insert each job under its deterministic ID, then mark them SUBMITTED in one commit.

    If BigQuery fails part-way, the ones that made it are still marked and the
    error propagates so the caller's message is redelivered for the rest.
    """
    done: list[JobRecord] = []
    started: list[JobRecord] = []  # accepted by BigQuery now (not a 409): their OpenLineage START
    try:
        for job in jobs:
            assert job.bigquery_job_id is not None
            outcome = deps.submitter.submit(request_for(run, job))
            structured_log.info(
                "job submitted",
                run_id=run.run_id,
                job_key=job.job_key,
                attempt=job.attempt,
                bigquery_job_id=job.bigquery_job_id,
                outcome=str(outcome),
            )
            done.append(job)
            if outcome == SubmitOutcome.SUBMITTED:
                started.append(job)
    finally:
        if done:
            now = deps.clock()
            marks = [(job.job_key, job.attempt) for job in done]
            deps.store.transact(lambda tx: mark_submitted(tx, run.run_id, marks, now))
            # After the mark: a new instance's first import of the OpenLineage client must not delay it.
            for job in started:
                lineage_started(deps, run, job, now)


def submit_checks(deps: Dependencies, run: RunRecord, job: JobRecord, checks: Sequence[CheckRecord]) -> None:
    """jobs.insert each check under its deterministic ID. Nothing waits on them: each reports by its own event."""
    for check in checks:
        outcome = deps.submitter.submit(check_request(run, job, check))
        structured_log.info(
            "check submitted",
            run_id=run.run_id,
            job_key=job.job_key,
            attempt=check.attempt,
            check=check.name,
            bigquery_job_id=check.bigquery_job_id,
            outcome=str(outcome),
        )


def request_for(run: RunRecord, job: JobRecord) -> SubmitRequest:
    assert job.bigquery_job_id is not None
    labels = {**job.spec.labels, **baton_labels(run.environment, run.run_id, job.job_key, job.attempt)}
    return SubmitRequest(
        job_id=job.bigquery_job_id,
        sql=job.spec.sql,
        labels=labels,
        parameters=query_parameters(run.params, job.spec.params),
        destination=job.spec.destination,
        write_disposition=job.spec.write_disposition,
    )


def check_request(run: RunRecord, job: JobRecord, check: CheckRecord) -> SubmitRequest:
    """The check's compiled query, bound with the run's params like its job, labelled with `baton_check`."""
    spec = next(c for c in job.spec.checks if c.name == check.name)
    labels = {**job.spec.labels, **check_labels(run.environment, run.run_id, job.job_key, check.attempt, check.name)}
    return SubmitRequest(
        job_id=check.bigquery_job_id,
        sql=spec.sql,
        labels=labels,
        parameters=query_parameters(run.params, {**job.spec.params, **spec.params}),
    )


def query_parameters(run_params: Mapping[str, BoundParam], job_params: Mapping[str, Any]) -> list[QueryParameter]:
    """Run params and the job's own constants, typed for BigQuery; never pasted into SQL."""
    result = [QueryParameter(name, bound.type, bound.value) for name, bound in sorted(run_params.items())]
    for name, value in sorted(job_params.items()):
        result.append(QueryParameter(name, _infer_type(value), value))
    return result


def _infer_type(value: object) -> str:
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    return "STRING"
