"""The completion path's outcome policy: what to record, ignore, dead-letter or hand back for redelivery.

Every accepted message ends either recorded, acknowledged as not Baton's, or on the
dead-letter topic with its reason; only a failure that a retry may cure answers 5xx.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from baton import structured_log
from baton.config import Settings
from baton.entrypoints import dead_letters, statuses
from baton.entrypoints.audit_log import Ignored, ParsedCompletion, parse_log_entry
from baton.entrypoints.pubsub_message import (
    MalformedMessage,
    PubSubMessage,
    decode_http_request,
    decode_json_payload,
    salvage,
)
from baton.entrypoints.work_item import decode_work_item
from baton.errors import BatonError, TransientError
from baton.service.orchestrator import Orchestrator
from baton.service.ports import WORK_ATTRIBUTE, DeadLetters

Response = tuple[dict[str, object], int]


def handle(
    headers: Mapping[str, str],
    body: bytes,
    settings: Settings,
    orchestrator: Callable[[], Orchestrator],
    dead_letter_topic: Callable[[], DeadLetters],
) -> Response:
    """Record one pushed completion; the status tells Pub/Sub whether to redeliver (see statuses.py).

    The orchestrator and the dead-letter topic are built on first use, so an event that is
    ignored or dropped does not pay for clients it does not need.
    """
    message: PubSubMessage | None = None
    try:
        message = decode_http_request(headers, body)
        if WORK_ATTRIBUTE in message.attributes:
            item = decode_work_item(message)
            orchestrator().carry_out(item)
            return {"work": item.kind, "run_id": item.run_id}, 200
        parsed = parse_log_entry(decode_json_payload(message), environment=settings.environment)
        if isinstance(parsed, Ignored) and parsed.reason in statuses.DEAD_LETTER_REASONS:
            return _drop(dead_letter_topic(), str(parsed.reason), parsed.message, message, body)
        if isinstance(parsed, Ignored):
            structured_log.info("event ignored", reason=str(parsed.reason), detail=parsed.message, **parsed.detail)
            return {"ignored": str(parsed.reason), "message": parsed.message}, 200
        foreign = _foreign(parsed, settings)
        if foreign is not None:
            return _drop(dead_letter_topic(), *foreign, message, body)
        result = orchestrator().complete(parsed.completion)
    except MalformedMessage as exc:
        # Redelivering the same bytes cannot help: acknowledge, and dead-letter it with the reason.
        return _drop(dead_letter_topic(), dead_letters.MALFORMED, str(exc), message, body)
    except BatonError as exc:
        if _last_attempt(settings, message):
            return _drop(dead_letter_topic(), dead_letters.GAVE_UP, f"{type(exc).__name__}: {exc}", message, body)
        structured_log.error("completion failed; Pub/Sub will redeliver", error=str(exc))
        return statuses.error_body(exc), statuses.status_for(exc)
    except Exception as exc:
        if not _last_attempt(settings, message):
            raise  # a 500: Pub/Sub redelivers with backoff
        return _drop(dead_letter_topic(), dead_letters.GAVE_UP, f"{type(exc).__name__}: {exc}", message, body)
    return {"verdict": str(result.verdict), "released": [job.job_key for job in result.ready]}, 200


def _foreign(parsed: ParsedCompletion, settings: Settings) -> tuple[str, str] | None:
    """A completion labelled for this environment from a project or location Baton does not submit to:
    a misrouted sink or a forged entry, never one of Baton's jobs. Dropped with its reason."""
    if parsed.project != settings.project:
        return dead_letters.FOREIGN_PROJECT, f"job of project '{parsed.project[:100]}', this is '{settings.project}'"
    if parsed.location is not None and parsed.location.casefold() != settings.bigquery_location.casefold():
        message = f"job in location '{parsed.location[:100]}', this environment's is '{settings.bigquery_location}'"
        return dead_letters.FOREIGN_LOCATION, message
    return None


def _last_attempt(settings: Settings, message: PubSubMessage | None) -> bool:
    """Pub/Sub says which attempt this is only with a dead-letter policy (and the emulator never does)."""
    limit = settings.max_delivery_attempts
    attempt = message.delivery_attempt if message is not None else None
    return attempt is not None and limit is not None and attempt >= limit


def _drop(topic: DeadLetters, reason: str, detail: str, message: PubSubMessage | None, body: bytes) -> Response:
    """Acknowledge what redelivery cannot cure, once it is on the dead-letter topic with its reason."""
    data, payload = (message.data, "message_data") if message is not None else (body, "push_body")
    source = message if message is not None else salvage(body)
    data, attributes = dead_letters.bounded(data, dead_letters.attributes_for(reason, detail, source, payload=payload))
    try:
        dead_letter_id = topic.put(data, attributes)
    except TransientError as exc:
        structured_log.error("dead-lettering failed; Pub/Sub will redeliver", reason=reason, error=str(exc))
        return statuses.error_body(exc), 503
    structured_log.warning(
        "malformed message dropped",
        reason=reason,
        error=detail,
        message_id=source.message_id if source is not None else None,
        dead_letter_id=dead_letter_id,
    )
    return {"dropped": reason, "message": detail, "dead_letter_id": dead_letter_id}, 200
