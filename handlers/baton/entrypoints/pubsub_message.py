"""Pub/Sub envelopes -> one typed `PubSubMessage`, whichever way the message arrived.

`bigquery_job_completed` receives the same message in two envelopes:

- a CloudEvent `google.cloud.pubsub.topic.v1.messagePublished` (Eventarc, or
  functions-framework converting a push request); its data is
  `{"message": {...}, "subscription": ...}`;
- the JSON body of an explicit push subscription, the same object plus
  `deliveryAttempt` when a dead-letter policy is set. The Pub/Sub emulator
  omits `deliveryAttempt` and sends `"data": ""` for attribute-only messages.

Pub/Sub sends both camelCase and snake_case message fields (`messageId` and
`message_id`); either is read. Anything malformed raises `MalformedMessage`,
whose one-line message names the field; the handler decides whether to drop it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from baton.entrypoints.json_body import ERROR_LIMIT, kind_of, strict_json
from baton.errors import InvalidRequest, one_line

PUBLISHED_EVENT_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
MAX_DATA_BYTES = 1024 * 1024  # an audit entry is a few KiB; anything near this is not one
_MAX_DATA_BASE64 = 4 * ((MAX_DATA_BYTES + 2) // 3)
MAX_BODY_BYTES = _MAX_DATA_BASE64 + 64 * 1024  # room for attributes and envelope fields


class MalformedMessage(InvalidRequest):
    """A Pub/Sub envelope or its payload cannot be decoded; redelivering it cannot help."""


@dataclass(frozen=True)
class PubSubMessage:
    """One Pub/Sub message. `delivery_attempt` is None unless the push body carries it."""

    data: bytes
    attributes: dict[str, str] = field(default_factory=dict)
    message_id: str | None = None
    publish_time: str | None = None
    delivery_attempt: int | None = None
    subscription: str | None = None


def decode_cloud_event(event_type: str, data: object) -> PubSubMessage:
    """The data of a messagePublished CloudEvent (`event["type"]`, `event.data`)."""
    if event_type != PUBLISHED_EVENT_TYPE:
        raise MalformedMessage(f"CloudEvent type is '{event_type[:100]}', expected {PUBLISHED_EVENT_TYPE}")
    if isinstance(data, bytes | str):
        data = _load_json(data, "CloudEvent data")
    return _decode_envelope(data, "CloudEvent data")


def decode_push_body(body: bytes | str | Mapping[str, object]) -> PubSubMessage:
    """The JSON body of a push request, raw or already parsed."""
    envelope = _load_json(body, "push body") if isinstance(body, bytes | str) else body
    return _decode_envelope(envelope, "push body")


def decode_http_request(headers: Mapping[str, str], body: bytes) -> PubSubMessage:
    """Any of the three HTTP shapes: binary CloudEvent (ce-* headers), structured CloudEvent, raw push body."""
    lowered = {key.lower(): value for key, value in headers.items()}
    if "ce-type" in lowered:
        return decode_cloud_event(lowered["ce-type"], body)
    if lowered.get("content-type", "").split(";")[0].strip().lower() == "application/cloudevents+json":
        event = _load_json(body, "CloudEvent")
        if not isinstance(event, Mapping):
            raise MalformedMessage(f"CloudEvent must be a JSON object, got {kind_of(event)}")
        event_type = event.get("type")
        if not isinstance(event_type, str):
            raise MalformedMessage(f"CloudEvent type must be a string, got {kind_of(event_type)}")
        return decode_cloud_event(event_type, event.get("data"))
    return decode_push_body(body)


def decode_json_payload(message: PubSubMessage) -> object:
    """The message data as JSON (a routed LogEntry is a JSON object; the caller checks its shape)."""
    if not message.data:
        raise MalformedMessage("message data is empty")
    try:
        text = message.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedMessage(f"message data is not UTF-8 (byte {exc.start})") from None
    return strict_json(text, "message data", MalformedMessage)


# --- envelope ---------------------------------------------------------------------------------


def _decode_envelope(envelope: object, where: str) -> PubSubMessage:
    if not isinstance(envelope, Mapping):
        raise MalformedMessage(f"{where} must be a JSON object, got {kind_of(envelope)}")
    message = envelope.get("message")
    if message is None:
        raise MalformedMessage(f"{where} has no message")
    if not isinstance(message, Mapping):
        raise MalformedMessage(f"{where} message must be an object, got {kind_of(message)}")
    return PubSubMessage(
        data=_data(message.get("data"), f"{where} message.data"),
        attributes=_attributes(message.get("attributes"), f"{where} message.attributes"),
        message_id=_either(message, "messageId", "message_id", f"{where} message"),
        publish_time=_either(message, "publishTime", "publish_time", f"{where} message"),
        delivery_attempt=_delivery_attempt(envelope.get("deliveryAttempt"), f"{where} deliveryAttempt"),
        subscription=_optional_str(envelope.get("subscription"), f"{where} subscription"),
    )


def _data(raw: object, where: str) -> bytes:
    if raw is None:
        return b""  # attribute-only message
    if not isinstance(raw, str):
        raise MalformedMessage(f"{where} must be a base64 string, got {kind_of(raw)}")
    if len(raw) > _MAX_DATA_BASE64:
        raise MalformedMessage(f"{where} is over the {MAX_DATA_BYTES}-byte limit ({len(raw)} base64 characters)")
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedMessage(f"{where} is not base64: {one_line(str(exc), ERROR_LIMIT)}") from None
    if len(data) > MAX_DATA_BYTES:
        raise MalformedMessage(f"{where} is {len(data)} bytes, over the {MAX_DATA_BYTES}-byte limit")
    return data


def _attributes(raw: object, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise MalformedMessage(f"{where} must be an object, got {kind_of(raw)}")
    attributes: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str):
            raise MalformedMessage(f"{where}.{key} must be a string, got {kind_of(value)}")
        attributes[str(key)] = value
    return attributes


def _either(message: Mapping[str, object], camel: str, snake: str, where: str) -> str | None:
    """Pub/Sub sends a field under both spellings; both must be strings, camelCase wins."""
    camel_value = _optional_str(message.get(camel), f"{where}.{camel}")
    snake_value = _optional_str(message.get(snake), f"{where}.{snake}")
    return camel_value if camel_value is not None else snake_value


def _optional_str(raw: object, where: str) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise MalformedMessage(f"{where} must be a string, got {kind_of(raw)}")
    return raw


def _delivery_attempt(raw: object, where: str) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise MalformedMessage(f"{where} must be a positive integer, got {raw!r:.40}")
    return raw


def _load_json(raw: bytes | str, where: str) -> object:
    size = len(raw.encode("utf-8") if isinstance(raw, str) else raw)
    if size > MAX_BODY_BYTES:
        raise MalformedMessage(f"{where} is {size} bytes, over the {MAX_BODY_BYTES}-byte limit")
    return strict_json(raw, where, MalformedMessage)


_SALVAGE = {
    "message_id": re.compile(rb'"message_?[iI]d"\s*:\s*"([^"\\]{1,200})"'),
    "subscription": re.compile(rb'"subscription"\s*:\s*"([^"\\]{1,300})"'),
}


def salvage(body: bytes) -> PubSubMessage | None:
    """The message ID and subscription of a push body that could not be decoded (too large, broken),
    found by a plain search, so that its dead letter still says which message it was."""
    found: dict[str, str | None] = {}
    for name, pattern in _SALVAGE.items():
        match = pattern.search(body)
        found[name] = match.group(1).decode("utf-8", errors="replace") if match is not None else None
    if not any(found.values()):
        return None
    return PubSubMessage(data=b"", message_id=found["message_id"], subscription=found["subscription"])
