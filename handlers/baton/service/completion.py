"""The completion use case: apply one finished job or check in a transaction, then publish and submit."""

from __future__ import annotations

import datetime as dt

from baton import structured_log
from baton.domain.records import CheckCompletion, Completion, JobStatus, RunStatus
from baton.domain.run_events import finished_event_type, run_event
from baton.domain.transitions.checks import apply_check_completion
from baton.domain.transitions.completion import CompletionResult, Verdict, apply_completion
from baton.service.continuations import hand_on, submit_released
from baton.service.dependencies import Dependencies
from baton.service.observations import lineage_finished, observe
from baton.service.submission import submit_checks


def complete(deps: Dependencies, event: Completion | CheckCompletion) -> CompletionResult:
    """Record a finished BigQuery job (or data check), then submit what it released and its checks."""
    event = observe(deps, event)
    now = deps.clock()
    limit = deps.store.jobs_per_commit
    if isinstance(event, CheckCompletion):
        result = deps.store.transact(lambda tx: apply_check_completion(tx, event, now, limit))
    else:
        result = deps.store.transact(lambda tx: apply_completion(tx, event, now, limit))
    fields: dict[str, object] = {
        "run_id": event.run_id,
        "job_key": event.job_key,
        "attempt": event.attempt,
        "verdict": str(result.verdict),
    }
    if isinstance(event, CheckCompletion):
        fields.update(check=event.check_name, passed=event.passed, rows=event.rows)
    if result.verdict in (Verdict.UNKNOWN_RUN, Verdict.UNKNOWN_JOB):
        structured_log.warning("completion for a job Baton does not know; acknowledged", **fields)
    else:
        structured_log.info("completion applied", released=[job.job_key for job in result.ready], **fields)
    recorded = result.run is not None and result.verdict in (Verdict.RECORDED, Verdict.RETRYING)
    if recorded:
        _publish_outcome(deps, result, now)
    try:
        if result.checks and result.run is not None and result.job is not None:
            submit_checks(deps, result.run, result.job, result.checks)
        if result.continuation is not None:
            hand_on(deps, [result.continuation])
        if result.ready and result.run is not None:
            submit_released(deps, result.run, result.ready)
    finally:
        # Last, so that a new instance's first import of the OpenLineage client delays no submission.
        if recorded and isinstance(event, Completion) and result.run is not None and result.job is not None:
            lineage_finished(deps, result.run, result.job, event, now)
    return result


def _publish_outcome(deps: Dependencies, result: CompletionResult, now: dt.datetime) -> None:
    run, job = result.run, result.job
    assert run is not None and job is not None
    if job.status == JobStatus.FAILED:
        deps.events.publish(run_event("job.failed", run, now, job=job, checks=result.failed_checks))
    elif job.status == JobStatus.SUCCEEDED and result.failed_checks:
        deps.events.publish(run_event("job.warning", run, now, job=job, checks=result.failed_checks))
    if result.run_finished and run.status != RunStatus.RUNNING:
        structured_log.info("run finished", run_id=run.run_id, status=str(run.status), manifest=run.manifest_name)
        deps.events.publish(run_event(finished_event_type(run.status), run, now, pricing=deps.pricing))
