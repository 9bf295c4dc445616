"""Cloud Functions entry points. Each one decodes, delegates to the core, and maps the outcome to a status.

Statuses are documented in baton/entrypoints/statuses.py and the README. `bigquery_job_completed`
is an HTTP function so that it can take a Pub/Sub CloudEvent and a raw push body
alike, and answer 2xx (acknowledge) or 5xx (redeliver) as the case demands.
"""

from __future__ import annotations

import flask
import functions_framework

from baton import bootstrap, structured_log
from baton.entrypoints import completion_push, requests, statuses
from baton.errors import BatonError

Response = tuple[dict[str, object], int]


@functions_framework.http
def start_manifest(request: flask.Request) -> Response:
    """Start a run: POST {"manifest": NAME, "params": {...}} answers {"run_id": ..., "status": RUNNING or QUEUED};
    with a "backfill" object, a backfill: {"backfill_id": ..., "runs": [...]} (entrypoints/requests.py)."""
    if request.method != "POST":
        return {"error": "MethodNotAllowed", "message": "use POST"}, 405
    try:
        command = requests.decode_start(request.get_data())
        if command.backfill is not None:
            backfill = command.backfill
            started = bootstrap.orchestrator().start_backfill(
                command.manifest,
                backfill.first,
                backfill.last,
                backfill.param,
                backfill.max_active_runs,
                command.select,
                command.exclude,
                command.params,
            )
            return statuses.backfill_body(started), 200
        run = bootstrap.orchestrator().start(command.manifest, command.params, command.select, command.exclude)
    except BatonError as exc:
        structured_log.warning("start_manifest refused", error=str(exc))
        return statuses.error_body(exc), statuses.status_for(exc)
    body = {"run_id": run.run_id, "manifest": run.manifest_name, "version": run.manifest_version, "jobs": run.total_jobs}
    return {**body, "status": str(run.status)}, 200


@functions_framework.http
def bigquery_job_completed(request: flask.Request) -> Response:
    """A BigQuery job finished: record it and submit what it released."""
    if request.method != "POST":
        return {"error": "MethodNotAllowed", "message": "use POST (Pub/Sub push)"}, 405
    body = request.get_data()
    return completion_push.handle(
        dict(request.headers), body, bootstrap.settings(), bootstrap.orchestrator, bootstrap.dead_letters
    )


@functions_framework.http
def reconcile(request: flask.Request) -> Response:
    """Scheduled: submit what a crash left READY and heal completions whose event was lost. POST, no body or {}."""
    if request.method != "POST":
        return {"error": "MethodNotAllowed", "message": "use POST"}, 405
    try:
        requests.decode_reconcile(request.get_data())
    except BatonError as exc:
        structured_log.warning("reconcile refused", error=str(exc))
        return statuses.error_body(exc), statuses.status_for(exc)
    try:
        report = bootstrap.orchestrator().reconcile(bootstrap.settings().reconcile)
    except BatonError as exc:
        structured_log.error("reconcile failed", error=str(exc))
        return statuses.error_body(exc), statuses.status_for(exc)
    return dict(report.__dict__), 200
