"""Retries on the local stack: BigQuery's error reasons decide, a job may override them, and backoff needs no sleeper."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

import pytest

from baton.domain.records import JobStatus, RunStatus
from tests.chaos.conftest import AuditRecord, ChaosStack, Scheduler
from tests.run_watch import wait_for_run

pytestmark = pytest.mark.integration

BACKOFF_S = 2.0  # chaos_retry's retry.backoff_seconds; the multiplier is the default 2


def attempt_of(key: str, attempt: int) -> Callable[[str, Mapping[str, str]], bool]:
    def match(_job_id: str, labels: Mapping[str, str]) -> bool:
        return labels.get("baton_job") == key and labels.get("baton_attempt") == str(attempt)

    return match


def test_retryable_reasons_retry_after_backoff_and_the_rest_fail_at_once(chaos: ChaosStack) -> None:
    stack, store = chaos.stack, chaos.store
    faults = {"flaky": ["backendError"], "throttled": ["rateLimitExceeded"] * 2, "hiccup": ["internalError"]}
    faults |= {"picky": ["backendError"], "denied": ["accessDenied"], "missing": ["notFound"]}
    for key, reasons in faults.items():
        for attempt, reason in enumerate(reasons, start=1):
            stack.bigquery.facade.inject_failure(attempt_of(key, attempt), reason=reason)

    with Scheduler(stack):  # the reconciler submits retries once their not-before time has passed
        run_id = stack.start_run("chaos_retry", {})["run_id"]
        run = wait_for_run(store, run_id, 90)
    jobs = {job.job_key: job for job in store.list_jobs(run_id)}
    outcome = {key: (job.status, job.attempt, job.error_reason) for key, job in jobs.items()}

    assert outcome == {
        "flaky": (JobStatus.SUCCEEDED, 2, None),
        "throttled": (JobStatus.SUCCEEDED, 3, None),
        "hiccup": (JobStatus.SUCCEEDED, 2, None),
        "behind_retries": (JobStatus.SUCCEEDED, 1, None),
        # The job overrides the retryable reasons: backendError is not among its own.
        "picky": (JobStatus.FAILED, 1, "backendError"),
        "denied": (JobStatus.FAILED, 1, "accessDenied"),
        "missing": (JobStatus.FAILED, 1, "notFound"),
        "bad_sql": (JobStatus.FAILED, 1, "invalidQuery"),
        "behind_bad_sql": (JobStatus.SKIPPED, 1, None),
    }
    assert run.status == RunStatus.FAILED

    # Each retry was inserted no sooner than its backoff after the failed attempt ended: 2 s, then 4 s.
    audit = AuditRecord.of(stack, run_id)
    for key, attempt, backoff in [("flaky", 2, BACKOFF_S), ("hiccup", 2, BACKOFF_S), ("throttled", 2, BACKOFF_S)]:
        waited = audit.insert_time[(key, attempt)] - audit.end_time[(key, attempt - 1)]
        assert waited >= dt.timedelta(seconds=backoff), (key, attempt, waited)
    waited = audit.insert_time[("throttled", 3)] - audit.end_time[("throttled", 2)]
    assert waited >= dt.timedelta(seconds=2 * BACKOFF_S)
    assert "behind_bad_sql" not in audit.inserted, "a skipped job never reaches BigQuery"
