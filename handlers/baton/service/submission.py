"""Handing released jobs and checks to BigQuery: jobs.insert under each one's deterministic ID, then the mark.

A crash between the commit that released a job and its insert leaves it READY;
a redelivered event or the reconciler submits it again under the same ID, and
BigQuery answers 409, which counts as submitted. A refusal that no retry can cure
(400 invalid, 404 notFound, 403 accessDenied) fails the job with BigQuery's reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from baton import structured_log
from baton.domain.naming import baton_labels, check_labels
from baton.domain.records import CheckCompletion, CheckRecord, Completion, JobError, JobRecord, RunRecord, RunStatus
from baton.domain.specs import BoundParam
from baton.domain.transitions.submission import mark_submitted
from baton.errors import JobRefused
from baton.service.dependencies import Dependencies
from baton.service.events import apply_with_events, publish_recorded
from baton.service.observations import lineage_started
from baton.service.ports import QueryParameter, SubmitOutcome, SubmitRequest
from baton.service.submission_gate import SubmissionGate


def submit(deps: Dependencies, run: RunRecord, jobs: Sequence[JobRecord], *, run_read_at: dt.datetime | None = None) -> int:
    """jobs.insert each job under its deterministic ID, then mark them SUBMITTED in one commit.

    Only while the run accepts submissions, as read right before the inserts (SubmissionGate;
    `run_read_at`: when the caller read `run` from the store, which counts as that read if recent):
    a cancelled or held run's jobs stay READY. If BigQuery fails part-way transiently, the ones
    that made it are still marked and the error propagates so the caller's message is redelivered
    for the rest. A job BigQuery refuses for good (JobRefused) fails with its reason through the
    failed-completion transition instead of staying READY forever. Returns how many BigQuery accepted.
    """
    gate = SubmissionGate(deps, run, run_read_at)
    done: list[JobRecord] = []
    refused: list[tuple[JobRecord, JobRefused]] = []
    started: list[JobRecord] = []  # accepted by BigQuery now (not a 409): their OpenLineage START
    raced: list[str] = []  # cancelled while being submitted: stopped again, so no START
    marked_at: dt.datetime | None = None
    try:
        try:
            for job in jobs:
                if not gate.open():
                    break
                assert job.bigquery_job_id is not None
                fields = {
                    "run_id": run.run_id,
                    "job_key": job.job_key,
                    "attempt": job.attempt,
                    "bigquery_job_id": job.bigquery_job_id,
                }
                try:
                    outcome = deps.submitter.submit(request_for(run, job))
                except JobRefused as refusal:
                    structured_log.error(
                        "job refused by BigQuery; it fails", reason=refusal.reason, error=refusal.message, **fields
                    )
                    refused.append((job, refusal))
                    continue
                structured_log.info("job submitted", outcome=str(outcome), **fields)
                done.append(job)
                if outcome == SubmitOutcome.SUBMITTED:
                    started.append(job)
        finally:
            if done:
                now = deps.clock()
                marks = [(job.job_key, job.attempt) for job in done]
                marked = deps.store.transact(lambda tx: mark_submitted(tx, run.run_id, marks, now))
                marked_at, raced = now, marked.cancelled
                _cancel_raced(deps, run.run_id, marked.cancelled)
        for job, refused_by in refused:
            assert job.bigquery_job_id is not None
            error = JobError(refused_by.reason, refused_by.message)
            record_refusal(deps, Completion(job.run_id, job.job_key, job.attempt, job.bigquery_job_id, error=error))
    finally:
        # After the mark and the refusals: a new instance's first import of the OpenLineage client must not delay them.
        if marked_at is not None:
            for job in started:
                if job.bigquery_job_id not in raced:
                    lineage_started(deps, run, job, marked_at)
    return len(done)


def _cancel_raced(deps: Dependencies, run_id: str, job_ids: Sequence[str]) -> None:
    """Stop in BigQuery what a cancel reached between its release and its insert.

    Why the cancel path and this one agree, whatever their order. Cancel commits its jobs
    CANCELLED (C1), then cancels in BigQuery what it found released (C2). Submit inserts
    (S1), then commits the SUBMITTED mark (S2), which reads the job's row. C1 and S2
    write the same row, so Spanner orders them:
      - C1 before S2: S2 finds the job CANCELLED and this cancels it, after S1, so BigQuery
        has it (C2 may have come before S1 and found nothing: a swallowed 404);
      - S2 before C1: C1 finds the job SUBMITTED and C2, after C1 and so after S1,
        cancels a job BigQuery has.
    Left open: a submitter that dies between S1 and S2. Its job runs to its end, and its
    completion is a no-op (`run_finished`).
    """
    for job_id in job_ids:
        structured_log.warning(
            "job cancelled while being submitted; cancelling it in BigQuery", run_id=run_id, bigquery_job_id=job_id
        )
        deps.submitter.cancel(job_id)


def submit_checks(deps: Dependencies, run: RunRecord, job: JobRecord, checks: Sequence[CheckRecord]) -> None:
    """jobs.insert each check under its deterministic ID. Nothing waits on them: each reports by its own event.

    A check BigQuery refuses for good is recorded as a check that could not run (so it fails closed).
    """
    inserted: list[str] = []
    for check in checks:
        fields = {"run_id": run.run_id, "job_key": job.job_key, "attempt": check.attempt, "check": check.name}
        try:
            outcome = deps.submitter.submit(check_request(run, job, check, deps.scratch_dataset))
            inserted.append(check.bigquery_job_id)
        except JobRefused as exc:
            structured_log.error("check refused by BigQuery; it fails", reason=exc.reason, error=exc.message, **fields)
            refusal = CheckCompletion(
                job.run_id,
                job.job_key,
                check.attempt,
                check.name,
                check.bigquery_job_id,
                rows=None,
                error=JobError(exc.reason, exc.message),
            )
            record_refusal(deps, refusal)
            continue
        structured_log.info("check submitted", bigquery_job_id=check.bigquery_job_id, outcome=str(outcome), **fields)
    if inserted:
        # The same ordering as jobs (see _cancel_raced): a cancel that committed before this read is seen
        # here; one that commits after it finds the checks pending and cancels them itself.
        current = deps.store.get_run(run.run_id)
        if current is not None and current.status == RunStatus.CANCELLED:
            _cancel_raced(deps, run.run_id, inserted)


def record_refusal(deps: Dependencies, event: Completion | CheckCompletion) -> None:
    """The refusal as the job's (or check's) failed completion: dependents skipped, the run failed,
    job.failed published, by the same transition an event of a failed job goes through."""
    now = deps.clock()
    result, events = deps.store.transact(lambda tx: apply_with_events(tx, event, now, deps.store.jobs_per_commit, deps.pricing))
    publish_recorded(deps, events)
    from baton.service.continuations import hand_on, start_dequeued  # continuations submits through this module

    start_dequeued(deps, events)  # the refusal ended the run: what waited in its queue starts
    if result.continuation is not None:  # a failure with more to skip than one commit holds
        hand_on(deps, [result.continuation])
    if result.ready and result.run is not None:  # the manifest lists the reason as retryable: the next attempt
        submit(deps, result.run, result.ready)
    if result.pool_released:  # the refused job's slot went to a queued job
        from baton.service.pools import submit_pool_released

        submit_pool_released(deps, result.pool_released)


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
        load=job.spec.load,
        copy=job.spec.copy,
        extract=job.spec.extract,
    )


def check_request(run: RunRecord, job: JobRecord, check: CheckRecord, scratch_dataset: str | None = None) -> SubmitRequest:
    """The check's compiled query, bound with the run's params like its job, labelled with `baton_check`.

    With a scratch dataset, the offending rows go to a table named by the check's job ID
    there (overwritten by a resubmission): whichever function heals the check, the
    completion handler or the reconciler, each under its own service account, can read
    its row count. An anonymous result table is readable only by the identity that ran
    the query, and domain-restricted-sharing org policies forbid those tables outright.
    """
    spec = next(c for c in job.spec.checks if c.name == check.name)
    labels = {**job.spec.labels, **check_labels(run.environment, run.run_id, job.job_key, check.attempt, check.name)}
    return SubmitRequest(
        job_id=check.bigquery_job_id,
        sql=spec.sql,
        labels=labels,
        parameters=query_parameters(run.params, {**job.spec.params, **spec.params}),
        destination=f"{scratch_dataset}.{check.bigquery_job_id}" if scratch_dataset else None,
        write_disposition="WRITE_TRUNCATE" if scratch_dataset else None,
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
