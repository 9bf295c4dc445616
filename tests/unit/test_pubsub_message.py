"""Pub/Sub envelopes: CloudEvent data, raw push bodies (with and without deliveryAttempt), malformed ones."""

from __future__ import annotations

import base64
import copy
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from baton.entrypoints.audit_log import ParsedCompletion, parse_log_entry
from baton.entrypoints.pubsub_message import (
    MAX_BODY_BYTES,
    MAX_DATA_BYTES,
    PUBLISHED_EVENT_TYPE,
    MalformedMessage,
    PubSubMessage,
    decode_cloud_event,
    decode_http_request,
    decode_json_payload,
    decode_push_body,
)
from baton.errors import InvalidRequest
from tests.fixtures import load_fixture

SUBSCRIPTION = "projects/acme-analytics-dev/subscriptions/baton-dev-bigquery-completions"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def push(message: dict[str, Any], **envelope: object) -> dict[str, Any]:
    return {"message": message, "subscription": SUBSCRIPTION, **envelope}


# --- the envelope shapes ---------------------------------------------------------------------


def test_cloud_event_data_carries_the_routed_log_entry() -> None:
    msg = decode_cloud_event(PUBLISHED_EVENT_TYPE, load_fixture("pubsub/cloud_event_data"))
    assert msg.message_id == "13950482372716001"
    assert msg.publish_time == "2025-03-14T02:05:19.004Z"
    assert msg.subscription == SUBSCRIPTION
    assert msg.delivery_attempt is None
    assert msg.attributes == {"logging.googleapis.com/timestamp": "2025-03-14T02:05:17.419734Z"}
    payload = decode_json_payload(msg)
    assert payload == load_fixture("audit_log/job_done_success")
    result = parse_log_entry(payload, environment="dev")
    assert isinstance(result, ParsedCompletion)
    assert result.completion.job_key == "load_orders"


def test_push_body_bytes_with_delivery_attempt() -> None:
    body = json.dumps(load_fixture("pubsub/push_body")).encode()
    msg = decode_push_body(body)
    assert (msg.delivery_attempt, msg.subscription, msg.message_id) == (2, SUBSCRIPTION, "13950482372716001")
    assert decode_json_payload(msg) == load_fixture("audit_log/job_done_success")


def test_emulator_push_body_has_no_delivery_attempt() -> None:
    msg = decode_push_body(load_fixture("pubsub/emulator_push_body"))
    assert msg.delivery_attempt is None
    assert msg.message_id == "1"
    assert msg.subscription == "projects/baton-local/subscriptions/baton-local-bigquery-completions"
    assert decode_json_payload(msg) == load_fixture("audit_log/job_done_success")


def test_snake_case_fields_alone_are_read() -> None:
    message = {"data": b64(b"{}"), "message_id": "7", "publish_time": "2025-03-14T00:00:00Z"}
    msg = decode_push_body(push(message))
    assert (msg.message_id, msg.publish_time) == ("7", "2025-03-14T00:00:00Z")


@pytest.mark.parametrize("data", [None, ""], ids=["absent", "empty-string-as-the-emulator-sends"])
def test_attribute_only_message_has_empty_data(data: str | None) -> None:
    message: dict[str, Any] = {"attributes": {"only": "attrs"}, "messageId": "2"}
    if data is not None:
        message["data"] = data
    msg = decode_push_body(push(message))
    assert msg == PubSubMessage(data=b"", attributes={"only": "attrs"}, message_id="2", subscription=SUBSCRIPTION)
    with pytest.raises(MalformedMessage, match="message data is empty"):
        decode_json_payload(msg)


def test_http_binary_cloud_event() -> None:
    data = load_fixture("pubsub/cloud_event_data")
    headers = {"Ce-Type": PUBLISHED_EVENT_TYPE, "Ce-Id": "1", "Ce-Source": "//pubsub.googleapis.com/x", "Ce-Specversion": "1.0"}
    msg = decode_http_request(headers, json.dumps(data).encode())
    assert msg.message_id == "13950482372716001"


def test_http_structured_cloud_event() -> None:
    event = {
        "specversion": "1.0",
        "type": PUBLISHED_EVENT_TYPE,
        "source": "//pubsub",
        "id": "1",
        "data": load_fixture("pubsub/cloud_event_data"),
    }
    msg = decode_http_request({"Content-Type": "application/cloudevents+json; charset=utf-8"}, json.dumps(event).encode())
    assert decode_json_payload(msg) == load_fixture("audit_log/job_done_success")


def test_http_raw_push() -> None:
    body = json.dumps(load_fixture("pubsub/push_body")).encode()
    assert decode_http_request({"content-type": "application/json"}, body).delivery_attempt == 2


def test_functions_framework_conversion_of_a_raw_push(tmp_path: Path) -> None:
    """A raw push to a cloud_event function becomes a CloudEvent whose data lost subscription and deliveryAttempt."""
    functions_framework = pytest.importorskip("functions_framework")
    seen = tmp_path / "seen.json"
    source = tmp_path / "main.py"
    source.write_text(
        textwrap.dedent(
            f"""
            import json
            import functions_framework

            @functions_framework.cloud_event
            def receive(event):
                with open({str(seen)!r}, "w") as out:
                    json.dump([event["type"], event.data], out)
            """
        )
    )
    app = functions_framework.create_app("receive", str(source), "cloudevent")
    response = app.test_client().post("/", json=load_fixture("pubsub/push_body"))
    assert response.status_code == 200
    event_type, data = json.loads(seen.read_text())
    msg = decode_cloud_event(event_type, data)
    assert (msg.message_id, msg.subscription, msg.delivery_attempt) == ("13950482372716001", None, None)
    assert decode_json_payload(msg) == load_fixture("audit_log/job_done_success")


# --- malformed envelopes ---------------------------------------------------------------------

GOOD = load_fixture("pubsub/push_body")


def variant(path: tuple[str, ...], value: object) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    node: Any = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


MALFORMED_BODIES: list[tuple[str, object, str]] = [
    ("not-json", b"{not json", "push body is not JSON"),
    ("not-utf8", b"\xff\xfe\x00{", "push body is not JSON"),
    ("nan", b'{"message": {"data": NaN}}', "push body is not plain JSON"),
    ("array", b"[]", "push body must be a JSON object, got an array"),
    ("string", b'"message"', "push body must be a JSON object, got a string"),
    ("no-message", json.dumps({"subscription": SUBSCRIPTION}).encode(), "push body has no message"),
    ("message-array", variant(("message",), []), "push body message must be an object, got an array"),
    ("message-string", variant(("message",), "hello"), "push body message must be an object, got a string"),
    ("data-number", variant(("message", "data"), 12), "push body message.data must be a base64 string, got a number"),
    ("data-object", variant(("message", "data"), {}), "push body message.data must be a base64 string, got an object"),
    ("data-not-base64", variant(("message", "data"), "!!not base64!!"), "push body message.data is not base64"),
    ("data-bad-padding", variant(("message", "data"), "abc"), "push body message.data is not base64"),
    (
        "attributes-array",
        variant(("message", "attributes"), ["a"]),
        "push body message.attributes must be an object, got an array",
    ),
    (
        "attribute-number",
        variant(("message", "attributes"), {"n": 1}),
        "push body message.attributes.n must be a string, got a number",
    ),
    ("messageId-number", variant(("message", "messageId"), 5), "push body message.messageId must be a string, got a number"),
    ("message_id-array", variant(("message", "message_id"), []), "push body message.message_id must be a string, got an array"),
    (
        "publishTime-object",
        variant(("message", "publishTime"), {}),
        "push body message.publishTime must be a string, got an object",
    ),
    ("subscription-number", variant(("subscription",), 5), "push body subscription must be a string, got a number"),
    ("deliveryAttempt-string", variant(("deliveryAttempt",), "3"), "push body deliveryAttempt must be a positive integer"),
    ("deliveryAttempt-zero", variant(("deliveryAttempt",), 0), "push body deliveryAttempt must be a positive integer"),
    ("deliveryAttempt-bool", variant(("deliveryAttempt",), True), "push body deliveryAttempt must be a positive integer"),
    ("deliveryAttempt-float", variant(("deliveryAttempt",), 2.0), "push body deliveryAttempt must be a positive integer"),
]


@pytest.mark.parametrize(("body", "expected"), [m[1:] for m in MALFORMED_BODIES], ids=[m[0] for m in MALFORMED_BODIES])
def test_malformed_push_body(body: bytes | dict[str, Any], expected: str) -> None:
    with pytest.raises(MalformedMessage) as caught:
        decode_push_body(body)
    assert str(caught.value).startswith(expected)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, InvalidRequest)


@pytest.mark.parametrize(
    ("event_type", "data", "expected"),
    [
        ("google.cloud.storage.object.v1.finalized", load_fixture("pubsub/cloud_event_data"), "CloudEvent type is"),
        (PUBLISHED_EVENT_TYPE, None, "CloudEvent data must be a JSON object, got null"),
        (PUBLISHED_EVENT_TYPE, [], "CloudEvent data must be a JSON object, got an array"),
        (PUBLISHED_EVENT_TYPE, b"not json", "CloudEvent data is not JSON"),
        (PUBLISHED_EVENT_TYPE, {"subscription": SUBSCRIPTION}, "CloudEvent data has no message"),
    ],
)
def test_malformed_cloud_event(event_type: str, data: object, expected: str) -> None:
    with pytest.raises(MalformedMessage, match=f"^{expected}"):
        decode_cloud_event(event_type, data)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"[1]", "CloudEvent must be a JSON object, got an array"),
        (json.dumps({"specversion": "1.0", "type": 3, "data": {}}).encode(), "CloudEvent type must be a string, got a number"),
    ],
)
def test_malformed_structured_cloud_event(body: bytes, expected: str) -> None:
    with pytest.raises(MalformedMessage, match=f"^{expected}"):
        decode_http_request({"content-type": "application/cloudevents+json"}, body)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xff\xfe\xfd", "message data is not UTF-8"),
        (b"{", "message data is not JSON"),
        (b'{"a": Infinity}', "message data is not plain JSON"),
        (b"", "message data is empty"),
    ],
)
def test_payload_that_is_not_utf8_json(data: bytes, expected: str) -> None:
    with pytest.raises(MalformedMessage, match=f"^{expected}"):
        decode_json_payload(PubSubMessage(data=data))


def test_payload_may_be_any_json_value() -> None:
    """Shape checks belong to the parser of what the payload is (audit_log), not to the envelope."""
    assert decode_json_payload(PubSubMessage(data=b"[1, 2]")) == [1, 2]


# --- size limits -----------------------------------------------------------------------------


def test_data_at_the_limit_is_accepted_and_one_byte_more_is_not() -> None:
    at_limit = b"x" * MAX_DATA_BYTES
    assert decode_push_body(push({"data": b64(at_limit)})).data == at_limit
    with pytest.raises(MalformedMessage, match=f"over the {MAX_DATA_BYTES}-byte limit"):
        decode_push_body(push({"data": b64(at_limit + b"x")}))
    with pytest.raises(MalformedMessage, match="base64 characters"):  # refused before decoding
        decode_push_body(push({"data": b64(at_limit + b"xyzw")}))


def test_oversized_body_is_rejected_before_parsing() -> None:
    body = b'{"message": {"data": "' + b"A" * MAX_BODY_BYTES + b'"}}'
    with pytest.raises(MalformedMessage, match=f"push body is {len(body)} bytes, over the {MAX_BODY_BYTES}-byte limit"):
        decode_push_body(body)
