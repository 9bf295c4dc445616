"""The attributes of the dead letters bigquery_job_completed writes itself, carrying the reason Pub/Sub's own forwarding cannot.

Pub/Sub dead-letters a message after the subscription's last delivery attempt, but
that copy says only how often it was tried. When the handler knows redelivery cannot
help (the bytes are malformed) or sees the last attempt fail, it publishes the message
to the same dead-letter topic itself, with `baton_reason` and `baton_detail`, and
acknowledges it. The data is the message's own data (or, when even the envelope is
unreadable, the request body, marked by `baton_payload`), so a replay republishes it
unchanged.
"""

from __future__ import annotations

from baton.entrypoints.pubsub_message import PubSubMessage

REASON_ATTRIBUTE = "baton_reason"
DETAIL_ATTRIBUTE = "baton_detail"  # one line: what is wrong, or the last error
PAYLOAD_ATTRIBUTE = "baton_payload"  # "message_data" (replayable) or "push_body" (the envelope itself was unreadable)
SOURCE_MESSAGE_ATTRIBUTE = "baton_source_message_id"
SOURCE_SUBSCRIPTION_ATTRIBUTE = "baton_source_subscription"
ATTEMPTS_ATTRIBUTE = "baton_delivery_attempts"

# Reasons, besides the audit_log.IgnoreReason values of entries that cannot be Baton's events.
MALFORMED = "malformed"  # the envelope or the data cannot be decoded
FOREIGN_PROJECT = "foreign_project"  # a completion of this environment's labels in a project that is not Baton's
FOREIGN_LOCATION = "foreign_location"  # ... in a location where Baton submits nothing
GAVE_UP = "gave_up"  # the last delivery attempt failed; the detail says how

_ATTRIBUTE_VALUE_LIMIT = 1024  # Pub/Sub's limit on an attribute value, in bytes
_ATTRIBUTE_KEY_LIMIT = 256  # ... on an attribute key
MAX_ATTRIBUTES = 100  # ... on the attributes of one message
# The most data a dead letter carries: Pub/Sub takes 10 MB per message, attributes included, and a
# request of many. A larger payload (a legal 8 MB message's whole push body is about 11 MB) is cut to
# this, marked by `baton_truncated_from`, so the dead letter can always be published.
MAX_DEAD_LETTER_DATA = 4 * 1024 * 1024
TRUNCATED_ATTRIBUTE = "baton_truncated_from"  # the payload's size in bytes before it was cut


def attributes_for(
    reason: str, detail: str, message: PubSubMessage | None = None, *, payload: str = "message_data"
) -> dict[str, str]:
    """Baton's attributes plus as many of the message's own as Pub/Sub allows, each within its limits."""
    attributes = {REASON_ATTRIBUTE: reason, DETAIL_ATTRIBUTE: _clip(" ".join(detail.split())), PAYLOAD_ATTRIBUTE: payload}
    if message is not None:
        for name, value in (
            (SOURCE_MESSAGE_ATTRIBUTE, message.message_id),
            (SOURCE_SUBSCRIPTION_ATTRIBUTE, message.subscription),
            (ATTEMPTS_ATTRIBUTE, str(message.delivery_attempt) if message.delivery_attempt else None),
        ):
            if value:
                attributes[name] = _clip(value)
    room = MAX_ATTRIBUTES - len(attributes) - 1  # one left for TRUNCATED_ATTRIBUTE
    # Keys starting with "goog" are Pub/Sub's own and cannot be published; Baton's own win over a message's.
    own = sorted(message.attributes.items()) if message is not None else []
    for key, value in own:
        if room <= 0:
            break
        if key.startswith("goog") or key in attributes or len(key.encode("utf-8")) > _ATTRIBUTE_KEY_LIMIT:
            continue
        attributes[key] = _clip(value)
        room -= 1
    return attributes


def bounded(data: bytes, attributes: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """The payload cut to MAX_DEAD_LETTER_DATA, saying so, so that publishing it cannot fail on its size."""
    if len(data) <= MAX_DEAD_LETTER_DATA:
        return data, attributes
    return data[:MAX_DEAD_LETTER_DATA], {**attributes, TRUNCATED_ATTRIBUTE: str(len(data))}


def _clip(value: str) -> str:
    encoded = value.encode("utf-8")
    if len(encoded) <= _ATTRIBUTE_VALUE_LIMIT:
        return value
    return encoded[: _ATTRIBUTE_VALUE_LIMIT - 3].decode("utf-8", errors="ignore") + "..."
