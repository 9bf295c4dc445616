"""Run events: which ones an outcome produces, and the outbox that keeps them until Pub/Sub has them.

Every use case writes its events in the transaction of its transition (`record`) and
publishes them after the commit (`publish_recorded`); the reconciler publishes what is left.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from baton import structured_log
from baton.domain.cost import Pricing
from baton.domain.records import CheckCompletion, Completion, JobStatus, RunStatus
from baton.domain.run_events import finished_event_type, run_event
from baton.domain.transaction import RunTransaction
from baton.domain.transitions.checks import apply_check_completion
from baton.domain.transitions.completion import CompletionResult, Verdict, apply_completion
from baton.domain.transitions.run_queue import end_events
from baton.errors import one_line
from baton.service.dependencies import Dependencies


def outcome_events(result: CompletionResult, now: dt.datetime, pricing: Pricing) -> list[dict[str, Any]]:
    """job.failed / job.warning for the job, then the run's end (with its cost) if this outcome finished it."""
    run, job = result.run, result.job
    if run is None or job is None or result.verdict not in (Verdict.RECORDED, Verdict.RETRYING):
        return []
    events = []
    if job.status == JobStatus.FAILED:
        events.append(run_event("job.failed", run, now, job=job, checks=result.failed_checks))
    elif job.status == JobStatus.SUCCEEDED and result.failed_checks:
        events.append(run_event("job.warning", run, now, job=job, checks=result.failed_checks))
    if result.run_finished and run.status != RunStatus.RUNNING:
        events.append(run_event(finished_event_type(run.status), run, now, pricing=pricing))
    return events


def apply_with_events(
    tx: RunTransaction, event: Completion | CheckCompletion, now: dt.datetime, limit: int, pricing: Pricing
) -> tuple[CompletionResult, list[dict[str, Any]]]:
    """A finished job's (or check's) transition and the run events it produces, in one transaction.
    `limit`: the job rows it may write (the store's jobs_per_commit); `pricing` prices a finished run's cost."""
    if isinstance(event, CheckCompletion):
        result = apply_check_completion(tx, event, now, limit)
    else:
        result = apply_completion(tx, event, now, limit)
    events = outcome_events(result, now, pricing)
    run = result.run
    if run is not None and run.status.terminal and any(event["type"] == finished_event_type(run.status) for event in events):
        events += end_events(tx, run, now)  # the run ended: its queue's next run starts in this transaction
    return result, record(tx, events)


def record(tx: RunTransaction, events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Put events into the outbox inside the transaction of the transition they report."""
    for event in events:
        tx.put_event(event)
    return list(events)


def publish_recorded(deps: Dependencies, events: Sequence[Mapping[str, Any]]) -> int:
    """After the commit: publish each event, then delete from the outbox what Pub/Sub took.

    A process with no run-events topic (NoEventPublisher) publishes nothing and deletes nothing.
    A failure is logged and leaves the event in the outbox for the reconciler, so it never
    fails the request: the transition is committed, and the event is not lost. A delete that
    fails only means the event is published twice, which its event_id lets consumers see.
    """
    if not events:
        return 0
    if not deps.events.delivers:  # no topic here: the outbox keeps them for a process that has one (the reconciler)
        return 0
    published: list[tuple[str, str]] = []
    for event in events:
        key = (str(event["run_id"]), str(event["event_id"]))
        try:
            deps.events.publish(event)
        except Exception as exc:
            structured_log.warning(
                "run event not published; the reconciler will", run_id=key[0], event_id=key[1], error=one_line(str(exc), 500)
            )
            continue
        published.append(key)
    if published:
        try:
            deps.store.forget_events(published)
        except Exception as exc:
            structured_log.warning("published run events stay in the outbox", count=len(published), error=one_line(str(exc), 500))
    return len(published)
