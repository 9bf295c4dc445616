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
GAVE_UP = "gave_up"  # the last delivery attempt failed; the detail says how

_ATTRIBUTE_VALUE_LIMIT = 1024  # Pub/Sub's limit on an attribute value, in bytes


def attributes_for(
    reason: str, detail: str, message: PubSubMessage | None = None, *, payload: str = "message_data"
) -> dict[str, str]:
    """The message's own attributes plus Baton's, each value within Pub/Sub's limit."""
    # Keys starting with "goog" are Pub/Sub's own and cannot be published.
    attributes = {k: v for k, v in message.attributes.items() if not k.startswith("goog")} if message is not None else {}
    attributes.update({REASON_ATTRIBUTE: reason, DETAIL_ATTRIBUTE: _clip(" ".join(detail.split())), PAYLOAD_ATTRIBUTE: payload})
    if message is not None:
        for name, value in (
            (SOURCE_MESSAGE_ATTRIBUTE, message.message_id),
            (SOURCE_SUBSCRIPTION_ATTRIBUTE, message.subscription),
            (ATTEMPTS_ATTRIBUTE, str(message.delivery_attempt) if message.delivery_attempt else None),
        ):
            if value:
                attributes[name] = _clip(value)
    return attributes


def _clip(value: str) -> str:
    encoded = value.encode("utf-8")
    if len(encoded) <= _ATTRIBUTE_VALUE_LIMIT:
        return value
    return encoded[: _ATTRIBUTE_VALUE_LIMIT - 3].decode("utf-8", errors="ignore") + "..."
