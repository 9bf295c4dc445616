"""Cloud Functions entry points. Each one decodes, delegates to the core, and maps the outcome to a status.

Statuses are documented in baton/web.py and the README. `bigquery_job_completed` is
an HTTP function so that it can take a Pub/Sub CloudEvent and a raw push body
alike, and answer 2xx (acknowledge) or 5xx (redeliver) as the case demands.
"""

from __future__ import annotations

import flask
import functions_framework

from baton import bootstrap, dead_letters, structured_log, web
from baton.audit_log import Ignored, parse_log_entry
from baton.errors import BatonError, TransientError
from baton.pubsub_message import MalformedMessage, PubSubMessage, decode_http_request, decode_json_payload

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
    if request.method != "POST":
        return {"error": "MethodNotAllowed", "message": "use POST (Pub/Sub push)"}, 405
    body = request.get_data()
    message: PubSubMessage | None = None
    try:
        message = decode_http_request(dict(request.headers), body)
        parsed = parse_log_entry(decode_json_payload(message), environment=bootstrap.settings().environment)
        if isinstance(parsed, Ignored) and parsed.reason in web.DEAD_LETTER_REASONS:
            return _drop(str(parsed.reason), parsed.message, message, body)
        if isinstance(parsed, Ignored):
            structured_log.info("event ignored", reason=str(parsed.reason), detail=parsed.message, **parsed.detail)
            return {"ignored": str(parsed.reason), "message": parsed.message}, 200
        result = bootstrap.orchestrator().complete(parsed.completion)
    except MalformedMessage as exc:
        # Redelivering the same bytes cannot help: acknowledge, and dead-letter it with the reason.
        return _drop(dead_letters.MALFORMED, str(exc), message, body)
    except BatonError as exc:
        if _last_attempt(message):
            return _drop(dead_letters.GAVE_UP, f"{type(exc).__name__}: {exc}", message, body)
        structured_log.error("completion failed; Pub/Sub will redeliver", error=str(exc))
        return web.error_body(exc), web.status_for(exc)
    except Exception as exc:
        if not _last_attempt(message):
            raise  # a 500: Pub/Sub redelivers with backoff
        return _drop(dead_letters.GAVE_UP, f"{type(exc).__name__}: {exc}", message, body)
    return {"verdict": str(result.verdict), "released": [job.job_key for job in result.ready]}, 200


def _last_attempt(message: PubSubMessage | None) -> bool:
    """Pub/Sub says which attempt this is only with a dead-letter policy (and the emulator never does)."""
    limit = bootstrap.settings().max_delivery_attempts
    attempt = message.delivery_attempt if message is not None else None
    return attempt is not None and limit is not None and attempt >= limit


def _drop(reason: str, detail: str, message: PubSubMessage | None, body: bytes) -> Response:
    """Acknowledge what redelivery cannot cure, once it is on the dead-letter topic with its reason."""
    data, payload = (message.data, "message_data") if message is not None else (body, "push_body")
    attributes = dead_letters.attributes_for(reason, detail, message, payload=payload)
    try:
        dead_letter_id = bootstrap.dead_letters().put(data, attributes)
    except TransientError as exc:
        structured_log.error("dead-lettering failed; Pub/Sub will redeliver", reason=reason, error=str(exc))
        return web.error_body(exc), 503
    source = message.message_id if message is not None else None
    structured_log.warning(
        "malformed message dropped", reason=reason, error=detail, message_id=source, dead_letter_id=dead_letter_id
    )
    return {"dropped": reason, "message": detail, "dead_letter_id": dead_letter_id}, 200


@functions_framework.http
def reconcile(request: flask.Request) -> Response:
    """Scheduled: submit what a crash left READY and heal completions whose event was lost. POST, no body or {}."""
    if request.method != "POST":
        return {"error": "MethodNotAllowed", "message": "use POST"}, 405
    try:
        web.decode_reconcile(request.get_data())
    except BatonError as exc:
        structured_log.warning("reconcile refused", error=str(exc))
        return web.error_body(exc), web.status_for(exc)
    try:
        report = bootstrap.orchestrator().reconcile(bootstrap.settings().reconcile)
    except BatonError as exc:
        structured_log.error("reconcile failed", error=str(exc))
        return web.error_body(exc), web.status_for(exc)
    return dict(report.__dict__), 200
