"""What an operator needs later and only BigQuery knows now, read before a completion is recorded.

A check's completion event carries only its row count; the offending rows are in the
check's own result. They are read here, only for a check that found rows, so a passing
run costs no extra call. Reading is best effort: a failure is logged and the completion
is recorded without them, since the verdict does not depend on them.
"""

from __future__ import annotations

from dataclasses import replace

from baton import structured_log
from baton.domain.records import CheckCompletion, Completion
from baton.domain.samples import MAX_SAMPLE_ROWS, bounded_sample
from baton.service.dependencies import Dependencies


def observe(deps: Dependencies, event: Completion | CheckCompletion) -> Completion | CheckCompletion:
    if isinstance(event, CheckCompletion) and event.found_rows and event.sample_rows is None:
        return _with_sample_rows(deps, event)
    return event


def _with_sample_rows(deps: Dependencies, event: CheckCompletion) -> CheckCompletion:
    try:
        rows = deps.submitter.sample_rows(event.bigquery_job_id, MAX_SAMPLE_ROWS)
    except Exception as exc:  # evidence, not state: never let it block the verdict
        structured_log.warning(
            "could not read a failed check's offending rows",
            run_id=event.run_id,
            job_key=event.job_key,
            attempt=event.attempt,
            check=event.check_name,
            bigquery_job_id=event.bigquery_job_id,
            error=f"{type(exc).__name__}: {exc}",
        )
        return event
    return replace(event, sample_rows=bounded_sample(rows))
