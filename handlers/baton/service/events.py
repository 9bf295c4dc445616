"""Which run events a recorded outcome publishes: one rule for event delivery, healing and refused inserts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from baton import structured_log
from baton.domain.records import JobStatus, RunStatus
from baton.domain.run_events import finished_event_type, run_event
from baton.domain.transitions.completion import CompletionResult, Verdict
from baton.service.dependencies import Dependencies


def outcome_events(result: CompletionResult, now: dt.datetime) -> list[dict[str, Any]]:
    """job.failed / job.warning for the job, then the run's end if this outcome finished it."""
    run, job = result.run, result.job
    if run is None or job is None or result.verdict not in (Verdict.RECORDED, Verdict.RETRYING):
        return []
    events = []
    if job.status == JobStatus.FAILED:
        events.append(run_event("job.failed", run, now, job=job, checks=result.failed_checks))
    elif job.status == JobStatus.SUCCEEDED and result.failed_checks:
        events.append(run_event("job.warning", run, now, job=job, checks=result.failed_checks))
    if result.run_finished and run.status != RunStatus.RUNNING:
        structured_log.info("run finished", run_id=run.run_id, status=str(run.status), manifest=run.manifest_name)
        events.append(run_event(finished_event_type(run.status), run, now))
    return events


def publish_all(deps: Dependencies, events: Sequence[Mapping[str, Any]]) -> None:
    for event in events:
        deps.events.publish(event)
