"""Outcomes -> HTTP statuses: the one mapping of Baton's errors to what Pub/Sub, Scheduler or a caller sees.

Status policy (every outcome is listed in docs/failure-model.md):
  start_manifest          200 started or queued (with a `backfill` object: a backfill started);
                          400 bad body/params/manifest/selection/backfill; 404 unknown manifest;
                          409 manifest paused (and `when_paused: refuse`), or a run in progress (`concurrency: skip`);
                          405 not POST; 413 too large; 503 storage or BigQuery unavailable.
  bigquery_job_completed  200 recorded (`verdict`), ignored (`ignored`: not Baton's event) or
                          dropped (`dropped`: cannot be processed, dead-lettered with its reason);
                          503 transient failure, so Pub/Sub redelivers with backoff.
  reconcile               200 report; 400 a body other than none or {}; 405 not POST; 413 too large;
                          503 storage unavailable.
"""

from __future__ import annotations

from typing import Any

from baton.entrypoints.audit_log import IgnoreReason
from baton.entrypoints.requests import RequestTooLarge
from baton.errors import (
    BackfillNotFound,
    BatonError,
    InvalidBackfill,
    InvalidParams,
    InvalidRequest,
    InvalidSelection,
    ManifestInvalid,
    ManifestNotFound,
    ManifestPaused,
    RunInProgress,
    RunNotFound,
    TransientError,
    one_line,
)
from baton.service.backfills import BackfillProgress

MAX_MESSAGE = 500  # characters of an error message in a response body

# Entries that cannot be any routed audit event of a job: acknowledged, but dead-lettered with the
# reason rather than only counted like another service's or environment's entries.
DEAD_LETTER_REASONS = frozenset(
    {IgnoreReason.NOT_AN_OBJECT, IgnoreReason.NOT_A_LOG_ENTRY, IgnoreReason.MALFORMED, IgnoreReason.MALFORMED_LABELS}
)


def status_for(error: BatonError) -> int:
    if isinstance(error, RequestTooLarge):
        return 413
    if isinstance(error, InvalidRequest | InvalidParams | ManifestInvalid | InvalidSelection | InvalidBackfill):
        return 400
    if isinstance(error, ManifestNotFound | RunNotFound | BackfillNotFound):
        return 404
    if isinstance(error, ManifestPaused | RunInProgress):
        return 409
    if isinstance(error, TransientError):
        return 503
    return 500


def backfill_body(started: BackfillProgress) -> dict[str, Any]:
    """start_manifest's answer to a backfill: its ID and each date's run."""
    backfill = started.backfill
    return {
        "backfill_id": backfill.backfill_id,
        "manifest": backfill.manifest_name,
        "param": backfill.param,
        "max_active_runs": backfill.max_active_runs,
        "runs": [{"date": started.date_of(run), "run_id": run.run_id, "status": str(run.status)} for run in started.runs],
    }


def error_body(error: BatonError) -> dict[str, Any]:
    body: dict[str, Any] = {"error": type(error).__name__, "message": one_line(str(error), MAX_MESSAGE)}
    problems = getattr(error, "problems", None)
    if problems:
        body["problems"] = problems
    return body
