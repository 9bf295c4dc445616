"""The completion use case: apply one finished job or check in a transaction, then publish and submit."""

from __future__ import annotations

from baton import structured_log
from baton.domain.outcomes import UNKNOWN_RESULT, completion_of
from baton.domain.records import CheckCompletion, Completion
from baton.domain.transitions.completion import CompletionResult, Verdict
from baton.service.continuations import hand_on, start_dequeued, submit_released
from baton.service.dependencies import Dependencies
from baton.service.events import apply_with_events, publish_recorded
from baton.service.observations import lineage_finished, observe
from baton.service.pools import submit_pool_released
from baton.service.ports import RemoteState
from baton.service.submission import submit_checks


def complete(deps: Dependencies, event: Completion | CheckCompletion, *, looked_up: bool = False) -> CompletionResult:
    """Record a finished BigQuery job (or data check), then submit what it released and its checks.

    `looked_up`: the event was made from jobs.get (the reconciler), so BigQuery has told all it knows.
    """
    if not looked_up:
        event = with_bigquery_answer(deps, event)
    event = observe(deps, event)
    now = deps.clock()
    result, events = deps.store.transact(lambda tx: apply_with_events(tx, event, now, deps.store.jobs_per_commit, deps.pricing))
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
    if result.run_finished and result.run is not None:
        run = result.run
        structured_log.info("run finished", run_id=run.run_id, status=str(run.status), manifest=run.manifest_name)
    publish_recorded(deps, events)
    try:
        start_dequeued(deps, events)
        if result.checks and result.run is not None and result.job is not None:
            submit_checks(deps, result.run, result.job, result.checks)
        if result.continuation is not None:
            hand_on(deps, [result.continuation])
        if result.ready and result.run is not None:
            submit_released(deps, result.run, result.ready)
        if result.pool_released:
            submit_pool_released(deps, result.pool_released)
    finally:
        # Last, so that a new instance's first import of the OpenLineage client delays no submission.
        recorded = result.run is not None and result.verdict in (Verdict.RECORDED, Verdict.RETRYING)
        if recorded and isinstance(event, Completion) and result.run is not None and result.job is not None:
            lineage_finished(deps, result.run, result.job, event, now)
    return result


def with_bigquery_answer(deps: Dependencies, event: Completion | CheckCompletion) -> Completion | CheckCompletion:
    """What an audit entry could not say, from jobs.get, before anything is decided on it.

    The entry's errorResult is a google.rpc.Status: RESOURCE_EXHAUSTED is rateLimitExceeded
    (retry), quotaExceeded or resourcesExceeded alike, and the job's retry policy decides
    by reason, so a reason inferred from such a code is replaced by BigQuery's own. A
    lookup that fails transiently raises (503: redelivered); a job BigQuery no longer
    knows keeps the event's guess. Likewise a check whose entry lacked queryStats (a
    truncated entry): jobs.get reports how many rows it returned, and without that
    answer the check stays `unknownResult`, a failure, never a pass.
    """
    if event.error is None or not (event.error.reason_inferred or event.error.reason == UNKNOWN_RESULT):
        return event
    remote = deps.submitter.lookup(event.bigquery_job_id)
    if remote is None or remote.state != RemoteState.DONE:
        return event
    if event.error.reason_inferred and remote.error is None:
        return event  # BigQuery names no reason: keep the entry's failure rather than read it as a success
    structured_log.info(
        "failure reason looked up",
        run_id=event.run_id,
        job_key=event.job_key,
        inferred=event.error.reason,
        reason=remote.error.reason if remote.error else None,
    )
    check_name = event.check_name if isinstance(event, CheckCompletion) else None
    output_rows = event.rows if isinstance(event, CheckCompletion) else None
    return completion_of(
        event.run_id,
        event.job_key,
        event.attempt,
        event.bigquery_job_id,
        check_name=check_name,
        error=remote.error,
        stats=event.stats,
        output_rows=remote.output_rows if remote.output_rows is not None else output_rows,
    )
