"""Cloud Functions entry points. Each one decodes, delegates to the core, and maps the outcome to a status.

Statuses are documented in baton/web.py and the README. `bigquery_job_completed` is
an HTTP function so that it can take a Pub/Sub CloudEvent and a raw push body
alike, and answer 2xx (acknowledge) or 5xx (redeliver) as the case demands.
"""

from __future__ import annotations

import flask
import functions_framework

from baton import bootstrap, structured_log, web
from baton.audit_log import Ignored, parse_log_entry
from baton.errors import BatonError
from baton.pubsub_message import MalformedMessage, decode_http_request, decode_json_payload

Response = tuple[dict[str, object], int]


@functions_framework.http
def start_manifest(request: flask.Request) -> Response:
    """Start a run: POST {"manifest": NAME, "params": {...}} answers {"run_id": ...}."""
    if request.method != "POST":
        return {"error": "MethodNotAllowed", "message": "use POST"}, 405
    try:
        command = web.decode_start(request.get_data())
        run = bootstrap.orchestrator().start(command.manifest, command.params)
    except BatonError as exc:
        structured_log.warning("start_manifest refused", error=str(exc))
        return web.error_body(exc), web.status_for(exc)
    return {"run_id": run.run_id, "manifest": run.manifest_name, "version": run.manifest_version, "jobs": run.total_jobs}, 200


@functions_framework.http
def bigquery_job_completed(request: flask.Request) -> Response:
    """A BigQuery job finished: record it and submit what it released."""
    try:
        message = decode_http_request(dict(request.headers), request.get_data())
        parsed = parse_log_entry(decode_json_payload(message), environment=bootstrap.settings().environment)
        if isinstance(parsed, Ignored):
            structured_log.info("event ignored", reason=str(parsed.reason), detail=parsed.message, **parsed.detail)
            return {"ignored": str(parsed.reason), "message": parsed.message}, 200
        result = bootstrap.orchestrator().complete(parsed.completion)
    except MalformedMessage as exc:
        # Redelivering the same bytes cannot help: acknowledge, and say why in one line.
        structured_log.warning("malformed message dropped", error=str(exc))
        return {"dropped": "malformed", "message": str(exc)}, 200
    except BatonError as exc:
        structured_log.error("completion failed; Pub/Sub will redeliver", error=str(exc))
        return web.error_body(exc), web.status_for(exc)
    return {"verdict": str(result.verdict), "released": [job.job_key for job in result.ready]}, 200


@functions_framework.http
def reconcile(request: flask.Request) -> Response:
    """Scheduled: submit what a crash left READY and heal completions whose event was lost."""
    try:
        report = bootstrap.orchestrator().reconcile()
    except BatonError as exc:
        structured_log.error("reconcile failed", error=str(exc))
        return web.error_body(exc), web.status_for(exc)
    return dict(report.__dict__), 200
