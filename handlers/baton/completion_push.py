"""The completion path's outcome policy: what to record, ignore, dead-letter or hand back for redelivery.

Every accepted message ends either recorded, acknowledged as not Baton's, or on the
dead-letter topic with its reason; only a failure that a retry may cure answers 5xx.
"""

from __future__ import annotations

from collections.abc import Mapping

from baton import bootstrap, dead_letters, structured_log, web
from baton.audit_log import Ignored, parse_log_entry
from baton.errors import BatonError, TransientError
from baton.pubsub_message import MalformedMessage, PubSubMessage, decode_http_request, decode_json_payload

Response = tuple[dict[str, object], int]


def handle(headers: Mapping[str, str], body: bytes) -> Response:
    """Record one pushed completion; the status tells Pub/Sub whether to redeliver (see baton/web.py)."""
    message: PubSubMessage | None = None
    try:
        message = decode_http_request(headers, body)
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
