"""bigquery_job_completed: every malformed or foreign message is acknowledged or dead-lettered, never crashes, changes nothing.

Outcomes (docs/failure-model.md):
  dropped   200, cannot be processed: put on the dead-letter topic with `baton_reason`, then acknowledged
  ignored   200, a well-formed entry that is not a completion of this environment's jobs: counted in the log
  verdict   200, a completion that is a no-op (unknown run or job, duplicate, stale)
  405       not a POST: Pub/Sub never sends one
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from baton.entrypoints.dead_letters import MAX_DEAD_LETTER_DATA
from baton.entrypoints.pubsub_message import MAX_BODY_BYTES
from baton.errors import TransientError
from tests.badinput.conftest import World, done_entry, entry_push, one_line, push
from tests.fixtures import load_fixture

Body = bytes | Callable[[str], bytes]  # bytes, or made from the seeded run's ID
RUN = "5f0c1e7a9b2d4c6e8f1a3b5c7d9e0f21"  # a well-formed run ID that is not in the database
CE_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
SURROGATE = "message data is not plain JSON: a lone UTF-16 surrogate (\\ud800-\\udfff) is not text"


@dataclass(frozen=True)
class Case:
    id: str
    body: Body
    outcome: str  # dropped | ignored | verdict | 405
    code: str  # the reason or verdict
    message: str = ""  # exact, or a prefix when it ends with "..."; verdicts have none
    payload: str = "message_data"  # what a dead letter carries: the message data, or the whole push body
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)


def envelope(value: object) -> bytes:
    return json.dumps(value).encode()


def data(raw: bytes, **message: Any) -> bytes:
    return push(raw, **message)


def entry(mutate: Callable[[dict[str, Any]], object], run_id: str = RUN, job_key: str = "land_raw") -> bytes:
    """A well-formed DONE entry, changed by `mutate` (which edits it in place)."""
    value = done_entry(run_id, job_key)
    mutate(value)
    return entry_push(value)


def job_of(value: dict[str, Any]) -> dict[str, Any]:
    job: dict[str, Any] = value["protoPayload"]["metadata"]["jobChange"]["job"]
    return job


def labels_of(value: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = job_of(value)["jobConfig"]["labels"]
    return labels


def fixture(name: str) -> bytes:
    return entry_push(load_fixture(f"audit_log/{name}"))


def set_in(path: str, new: object) -> Callable[[dict[str, Any]], object]:
    def mutate(value: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = value
        for part in parents:
            node = node[part]
        node[last] = new

    return mutate


JOB = "protoPayload.metadata.jobChange.job"
DEEP = b"[" * 20000 + b"]" * 20000
OVERSIZE = envelope({"message": {"data": "e30="}, "pad": "x" * MAX_BODY_BYTES})
HUGE = base64.b64encode(b"x" * (1024 * 1024 + 1)).decode()

CASES = [
    # --- the envelope cannot be read: the dead letter carries the whole body --------------------------
    Case(
        "not json",
        b"not json at all",
        "dropped",
        "malformed",
        "push body is not JSON: Expecting value: line 1 column 1 (char 0)",
        "push_body",
    ),
    Case(
        "empty body", b"", "dropped", "malformed", "push body is not JSON: Expecting value: line 1 column 1 (char 0)", "push_body"
    ),
    Case("body is an array", b"[]", "dropped", "malformed", "push body must be a JSON object, got an array", "push_body"),
    Case("no message", b"{}", "dropped", "malformed", "push body has no message", "push_body"),
    Case("message null", envelope({"message": None}), "dropped", "malformed", "push body has no message", "push_body"),
    Case(
        "message is a string",
        envelope({"message": "hi"}),
        "dropped",
        "malformed",
        "push body message must be an object, got a string",
        "push_body",
    ),
    Case(
        "data is a number",
        envelope({"message": {"data": 42}}),
        "dropped",
        "malformed",
        "push body message.data must be a base64 string, got a number",
        "push_body",
    ),
    Case(
        "data not base64",
        envelope({"message": {"data": "***"}}),
        "dropped",
        "malformed",
        "push body message.data is not base64: ...",
        "push_body",
    ),
    Case(
        "data over 1 MiB",
        envelope({"message": {"data": HUGE}}),
        "dropped",
        "malformed",
        "push body message.data is 1048577 bytes, over the 1048576-byte limit",
        "push_body",
    ),
    Case(
        "attributes array",
        envelope({"message": {"data": "e30=", "attributes": []}}),
        "dropped",
        "malformed",
        "push body message.attributes must be an object, got an array",
        "push_body",
    ),
    Case(
        "attribute number",
        envelope({"message": {"data": "e30=", "attributes": {"origin": 1}}}),
        "dropped",
        "malformed",
        "push body message.attributes.origin must be a string, got a number",
        "push_body",
    ),
    Case(
        "messageId number",
        envelope({"message": {"data": "e30=", "messageId": 7}}),
        "dropped",
        "malformed",
        "push body message.messageId must be a string, got a number",
        "push_body",
    ),
    Case(
        "deliveryAttempt zero",
        envelope({"message": {"data": "e30="}, "deliveryAttempt": 0}),
        "dropped",
        "malformed",
        "push body deliveryAttempt must be a positive integer, got 0",
        "push_body",
    ),
    Case(
        "deliveryAttempt string",
        envelope({"message": {"data": "e30="}, "deliveryAttempt": "3"}),
        "dropped",
        "malformed",
        "push body deliveryAttempt must be a positive integer, got '3'",
        "push_body",
    ),
    Case(
        "subscription number",
        envelope({"message": {"data": "e30="}, "subscription": 5}),
        "dropped",
        "malformed",
        "push body subscription must be a string, got a number",
        "push_body",
    ),
    Case(
        "NaN in envelope",
        b'{"message": {"data": "e30="}, "deliveryAttempt": NaN}',
        "dropped",
        "malformed",
        "push body is not plain JSON: NaN is not JSON",
        "push_body",
    ),
    Case(
        "envelope nested too deep",
        DEEP,
        "dropped",
        "malformed",
        "push body is not JSON Baton reads: nested too deeply",
        "push_body",
    ),
    Case(
        "body over the limit",
        OVERSIZE,
        "dropped",
        "malformed",
        f"push body is {len(OVERSIZE)} bytes, over the {MAX_BODY_BYTES}-byte limit",
        "push_body",
    ),
    Case(
        "cloud event of storage",
        b"{}",
        "dropped",
        "malformed",
        f"CloudEvent type is 'google.cloud.storage.object.v1.finalized', expected {CE_TYPE}",
        "push_body",
        headers={
            "ce-type": "google.cloud.storage.object.v1.finalized",
            "ce-specversion": "1.0",
            "ce-id": "1",
            "ce-source": "//storage",
        },
    ),
    Case(
        "structured cloud event array",
        b"[]",
        "dropped",
        "malformed",
        "CloudEvent must be a JSON object, got an array",
        "push_body",
        headers={"Content-Type": "application/cloudevents+json"},
    ),
    Case(
        "structured cloud event type number",
        b'{"type": 5}',
        "dropped",
        "malformed",
        "CloudEvent type must be a string, got a number",
        "push_body",
        headers={"Content-Type": "application/cloudevents+json"},
    ),
    # --- the message data cannot be read: the dead letter carries the data -------------------------------
    Case("data empty", data(b""), "dropped", "malformed", "message data is empty"),
    Case("attribute-only message", push(None, attributes={"origin": "x"}), "dropped", "malformed", "message data is empty"),
    Case("data not utf-8", data(b"\xff\xfe{}"), "dropped", "malformed", "message data is not UTF-8 (byte 0)"),
    Case(
        "data not json",
        data(b"{broken"),
        "dropped",
        "malformed",
        "message data is not JSON: Expecting property name enclosed in double quotes...",
    ),
    Case("data NaN", data(b"NaN"), "dropped", "malformed", "message data is not plain JSON: NaN is not JSON"),
    Case("data nested too deep", data(DEEP), "dropped", "malformed", "message data is not JSON Baton reads: nested too deeply"),
    # --- JSON, but no audit entry of a job: dead-lettered with the parser's reason ----------------------
    Case("data is an array", data(b"[1, 2]"), "dropped", "not_an_object", "payload is an array, not a JSON object"),
    Case("data is a string", data(b'"DONE"'), "dropped", "not_an_object", "payload is a string, not a JSON object"),
    Case("data is an empty object", data(b"{}"), "dropped", "not_a_log_entry", "no protoPayload: not an audit LogEntry"),
    Case(
        "protoPayload is a string",
        data(b'{"protoPayload": "x"}'),
        "dropped",
        "malformed",
        "protoPayload must be an object, got a string",
    ),
    Case(
        "jobName malformed",
        lambda _: entry(set_in(f"{JOB}.jobName", "jobs/x")),
        "dropped",
        "malformed",
        f"{JOB}.jobName is 'jobs/x', not projects/P/jobs/ID",
    ),
    Case(
        "job missing",
        lambda _: entry(lambda e: e["protoPayload"]["metadata"]["jobChange"].pop("job")),
        "dropped",
        "malformed",
        f"{JOB} is missing",
    ),
    Case(
        "labels array",
        lambda _: entry(set_in(f"{JOB}.jobConfig.labels", ["baton_env"])),
        "dropped",
        "malformed",
        f"{JOB}.jobConfig.labels must be an object, got an array",
    ),
    Case(
        "label value number",
        lambda _: entry(set_in(f"{JOB}.jobConfig.labels.baton_attempt", 1)),
        "dropped",
        "malformed",
        f"{JOB}.jobConfig.labels.baton_attempt must be a string, got a number",
    ),
    Case(
        "totalSlotMs not a number",
        lambda _: entry(set_in(f"{JOB}.jobStats.totalSlotMs", "lots")),
        "dropped",
        "malformed",
        f"{JOB}.jobStats.totalSlotMs is 'lots', not a decimal integer",
    ),
    Case(
        "endTime not a timestamp",
        lambda _: entry(set_in(f"{JOB}.jobStats.endTime", "yesterday")),
        "dropped",
        "malformed",
        f"{JOB}.jobStats.endTime is 'yesterday', not an RFC 3339 timestamp",
    ),
    Case(
        "error code not a number",
        lambda _: entry(set_in(f"{JOB}.jobStatus.errorResult", {"code": "x"})),
        "dropped",
        "malformed",
        f"{JOB}.jobStatus.errorResult.code is 'x', not a decimal integer",
    ),
    Case(
        "attempt label missing",
        lambda _: entry(lambda e: labels_of(e).pop("baton_attempt")),
        "dropped",
        "malformed_labels",
        "Baton labels invalid: baton_attempt is missing",
    ),
    Case(
        "run label not hex",
        lambda _: entry(set_in(f"{JOB}.jobConfig.labels.baton_run", "RUN-1")),
        "dropped",
        "malformed_labels",
        "Baton labels invalid: baton_run 'RUN-1' is not 32 lowercase hex digits",
    ),
    Case(
        "attempt label zero",
        lambda _: entry(set_in(f"{JOB}.jobConfig.labels.baton_attempt", "0")),
        "dropped",
        "malformed_labels",
        "Baton labels invalid: baton_attempt '0' is not a positive integer",
    ),
    Case(
        "job label upper case",
        lambda _: entry(set_in(f"{JOB}.jobConfig.labels.baton_job", "Land")),
        "dropped",
        "malformed_labels",
        "Baton labels invalid: baton_job 'Land' does not match ...",
    ),
    # --- numbers, times and text no store or encoder takes: dropped, never a 500 --------------------------
    Case(
        "slot ms beyond int64",
        lambda run: entry(set_in(f"{JOB}.jobStats.totalSlotMs", "9223372036854775808"), run, "hist_orders"),
        "dropped",
        "malformed",
        f"{JOB}.jobStats.totalSlotMs is 9223372036854775808, beyond int64",
    ),
    Case(
        "row count beyond int64 as a number",
        lambda run: entry(set_in(f"{JOB}.jobStats.queryStats.outputRowCount", 10**20), run, "hist_orders"),
        "dropped",
        "malformed",
        f"{JOB}.jobStats.queryStats.outputRowCount is 100000000000000000000, beyond int64",
    ),
    Case(
        "billed bytes beyond int64",
        lambda _: entry(set_in(f"{JOB}.jobStats.queryStats.totalBilledBytes", "9999999999999999999")),
        "dropped",
        "malformed",
        f"{JOB}.jobStats.queryStats.totalBilledBytes is 9999999999999999999, beyond int64",
    ),
    Case(
        "end time before year 1 in UTC",
        lambda run: entry(set_in(f"{JOB}.jobStats.endTime", "0001-01-01T00:00:00+01:00"), run, "hist_orders"),
        "dropped",
        "malformed",
        f"{JOB}.jobStats.endTime is '0001-01-01T00:00:00+01:00', not a valid date and time",
    ),
    Case(
        "start time after year 9999 in UTC",
        lambda run: entry(set_in(f"{JOB}.jobStats.startTime", "9999-12-31T23:59:59-01:00"), run, "hist_orders"),
        "dropped",
        "malformed",
        f"{JOB}.jobStats.startTime is '9999-12-31T23:59:59-01:00', not a valid date and time",
    ),
    Case(
        "lone surrogate in a label",
        lambda run: entry(set_in(f"{JOB}.jobConfig.labels.team", "sales\ud800"), run, "hist_orders"),
        "dropped",
        "malformed",
        SURROGATE,
    ),
    Case(
        "lone surrogate in the job label",
        lambda _: entry(set_in(f"{JOB}.jobConfig.labels.baton_job", "land_\udc00raw")),
        "dropped",
        "malformed",
        SURROGATE,
    ),
    Case(
        "lone surrogate in a label key",
        lambda _: entry(lambda e: labels_of(e).update({"team\udfff": "x"})),
        "dropped",
        "malformed",
        SURROGATE,
    ),
    Case(
        "lone surrogate in the job name",
        lambda run: entry(set_in(f"{JOB}.jobName", f"projects/baton-local/jobs/baton_dev_{run}_hist_orders_1\ud800"), run),
        "dropped",
        "malformed",
        SURROGATE,
    ),
    Case(
        "lone surrogate in an attribute",
        envelope({"message": {"data": "e30=", "messageId": "4711", "attributes": {"origin": "x\udbff"}}}),
        "dropped",
        "malformed",
        "push body " + SURROGATE[len("message data ") :],
        "push_body",
    ),
    Case(
        "job label with a trailing newline",
        lambda run: entry(set_in(f"{JOB}.jobConfig.labels.baton_job", "hist_orders\n"), run, "hist_orders"),
        "dropped",
        "malformed_labels",
        "Baton labels invalid: baton_job 'hist_orders\\n' does not match ...",
    ),
    Case(
        "environment label with a trailing newline",
        lambda run: entry(set_in(f"{JOB}.jobConfig.labels.baton_env", "dev\n"), run, "hist_orders"),
        "dropped",
        "malformed_labels",
        "Baton labels invalid: baton_env 'dev\\n' is not a Baton environment name",
    ),
    Case(
        "attempt label with a trailing newline",
        lambda run: entry(set_in(f"{JOB}.jobConfig.labels.baton_attempt", "1\n"), run, "hist_orders"),
        "dropped",
        "malformed_labels",
        "Baton labels invalid: baton_attempt '1\\n' is not a positive integer",
    ),
    Case(
        "run label with a trailing newline",
        lambda run: entry(set_in(f"{JOB}.jobConfig.labels.baton_run", f"{run}\n"), run, "hist_orders"),
        "dropped",
        "malformed_labels",
        "Baton labels invalid: baton_run '...",
    ),
    Case(
        "check label with a trailing newline",
        lambda run: entry(set_in(f"{JOB}.jobConfig.labels.baton_check", "ids\n"), run, "hist_orders"),
        "dropped",
        "malformed_labels",
        "Baton labels invalid: baton_check 'ids\\n' does not match ...",
    ),
    # --- sizes Pub/Sub can deliver but a whole copy of cannot be republished -----------------------------
    Case(
        "legal 8 MB message",
        push(b"{" + b" " * 8_000_000 + b"}", attributes={"logging.googleapis.com/timestamp": "2026-11-27T06:00:00Z"}),
        "dropped",
        "malformed",
        "push body is ...",
        "push_body",
    ),
    Case(
        "150 attributes",
        push(b"[150]", attributes={f"attribute_{i:03d}": "v" for i in range(150)}),
        "dropped",
        "not_an_object",
        "payload is an array, not a JSON object",
    ),
    Case(
        "attribute key over 256 bytes",
        push(b"[256]", attributes={"k" * 300: "v"}),
        "dropped",
        "not_an_object",
        "payload is an array, not a JSON object",
    ),
    # --- a completion from where Baton submits nothing: dropped with the reason -------------------------
    Case(
        "completion in another project",
        lambda run: entry(
            set_in(f"{JOB}.jobName", f"projects/someone-else/jobs/baton_dev_{run}_hist_orders_1"), run, "hist_orders"
        ),
        "dropped",
        "foreign_project",
        "job of project 'someone-else', this is 'baton-local'",
    ),
    Case(
        "completion in another location",
        lambda run: entry(set_in("resource.labels.location", "EU"), run, "hist_orders"),
        "dropped",
        "foreign_location",
        "job in location 'EU', this environment's is 'US'",
    ),
    Case(
        "completion named in another location",
        lambda run: entry(
            set_in(f"{JOB}.jobName", f"projects/baton-local/locations/asia-northeast1/jobs/baton_dev_{run}_hist_orders_1"),
            run,
            "hist_orders",
        ),
        "dropped",
        "foreign_location",
        "job in location 'asia-northeast1', this environment's is 'US'",
    ),
    # --- well-formed entries that are not this environment's completions: acknowledged and counted ----
    Case("another service", fixture("non_bigquery"), "ignored", "not_bigquery", "audit entry of ..."),
    Case(
        "older AuditData shape",
        fixture("legacy_job_completed"),
        "ignored",
        "legacy_audit_data",
        "older AuditData entry (jobservice.jobcompleted); Baton reads BigQueryAuditMetadata",
    ),
    Case(
        "job inserted",
        fixture("job_insertion"),
        "ignored",
        "not_job_change",
        "BigQueryAuditMetadata event jobInsertion, not jobChange",
    ),
    Case("job running", fixture("job_change_running"), "ignored", "not_done", "job changed to RUNNING, not DONE"),
    Case(
        "child job of a script",
        fixture("script_child_done"),
        "ignored",
        "child_job",
        "child job of a script; the parent script job is the one Baton submitted",
    ),
    Case("no Baton labels", fixture("no_baton_labels"), "ignored", "not_baton_job", "job carries no Baton labels"),
    Case(
        "prod job in dev",
        fixture("other_environment"),
        "ignored",
        "other_environment",
        "job of environment 'prod', this is 'dev'",
    ),
    Case(
        "staging job in dev",
        lambda run: entry_push(done_entry(run, "land_raw", env="staging")),
        "ignored",
        "other_environment",
        "job of environment 'staging', this is 'dev'",
    ),
    Case(
        "metadata of another type",
        lambda _: entry(set_in("protoPayload.metadata.@type", "type.googleapis.com/google.cloud.audit.Other")),
        "ignored",
        "unknown_bigquery_payload",
        "BigQuery entry without BigQueryAuditMetadata (metadata type 'type.googleapis.com/google.cloud.audit.Other')",
    ),
    Case(
        "job ID not Baton's",
        lambda run: entry_push(done_entry(run, "land_raw", job_id="scheduled_query_42")),
        "ignored",
        "foreign_job_id",
        "job ID 'scheduled_query_42' is not Baton's ...",
    ),
    # --- completions that change nothing -----------------------------------------------------------------
    Case("unknown run", lambda _: entry_push(done_entry(RUN, "land_raw")), "verdict", "unknown_run"),
    Case("unknown job", lambda run: entry_push(done_entry(run, "no_such_job")), "verdict", "unknown_job"),
    Case("duplicate completion", lambda run: entry_push(done_entry(run, "land_raw")), "verdict", "duplicate"),
    Case("attempt never made", lambda run: entry_push(done_entry(run, "land_raw", attempt=5)), "verdict", "stale"),
    Case("running job, later attempt", lambda run: entry_push(done_entry(run, "hist_orders", attempt=2)), "verdict", "stale"),
    Case("job not yet released", lambda run: entry_push(done_entry(run, "consume_order_lines")), "verdict", "stale"),
    # --- not a push at all ----------------------------------------------------------------------------------
    Case("get", b"", "405", "MethodNotAllowed", "use POST (Pub/Sub push)", method="GET"),
    Case("put", b"{}", "405", "MethodNotAllowed", "use POST (Pub/Sub push)", method="PUT"),
    Case("delete", b"", "405", "MethodNotAllowed", "use POST (Pub/Sub push)", method="DELETE"),
    Case("patch", b"{}", "405", "MethodNotAllowed", "use POST (Pub/Sub push)", method="PATCH"),
    # --- more of the cloud-faults issue's classes: int64, times, surrogates, newlines, attributes -------------
    Case(
        "attempt label beyond int64",
        lambda run: entry(set_in(f"{JOB}.jobConfig.labels.baton_attempt", "9223372036854775808"), run, "hist_orders"),
        "dropped",
        "malformed_labels",
        "Baton labels invalid: baton_attempt '9223372036854775808' is not a positive integer",
    ),
    Case(
        "error code beyond int64",
        lambda run: entry(set_in(f"{JOB}.jobStatus.errorResult", {"code": 2**64, "message": "x"}), run, "hist_orders"),
        "dropped",
        "malformed",
        f"{JOB}.jobStatus.errorResult.code is 18446744073709551616, beyond int64",
    ),
    Case(
        "deliveryAttempt beyond int64",
        push(b"{}", deliveryAttempt=2**63),
        "dropped",
        "not_a_log_entry",
        "no protoPayload: not an audit LogEntry",
    ),
    Case(
        "end time in year 0",
        lambda run: entry(set_in(f"{JOB}.jobStats.endTime", "0000-01-01T00:00:00Z"), run, "hist_orders"),
        "dropped",
        "malformed",
        f"{JOB}.jobStats.endTime is '0000-01-01T00:00:00Z', not a valid date and time",
    ),
    Case(
        "end time in year 10000",
        lambda run: entry(set_in(f"{JOB}.jobStats.endTime", "10000-01-01T00:00:00Z"), run, "hist_orders"),
        "dropped",
        "malformed",
        f"{JOB}.jobStats.endTime is '10000-01-01T00:00:00Z', not an RFC 3339 timestamp",
    ),
    Case(
        "lone surrogate in an attribute key",
        envelope({"message": {"data": "e30=", "messageId": "4711", "attributes": {"origin\udc00": "x"}}}),
        "dropped",
        "malformed",
        "push body " + SURROGATE[len("message data ") :],
        "push_body",
    ),
    Case(
        "lone surrogate in the message ID",
        envelope({"message": {"data": "e30=", "messageId": "4711\ud800"}}),
        "dropped",
        "malformed",
        "push body " + SURROGATE[len("message data ") :],
        "push_body",
    ),
    Case(
        "job label with a trailing CRLF",
        lambda run: entry(set_in(f"{JOB}.jobConfig.labels.baton_job", "hist_orders\r\n"), run, "hist_orders"),
        "dropped",
        "malformed_labels",
        "Baton labels invalid: baton_job 'hist_orders\\r\\n' does not match ...",
    ),
    Case(
        "101 attributes",
        push(b"[101]", attributes={f"attribute_{i:03d}": "v" for i in range(101)}),
        "dropped",
        "not_an_object",
        "payload is an array, not a JSON object",
    ),
    Case(
        "completion in another project and location",
        lambda run: entry(
            set_in(f"{JOB}.jobName", f"projects/someone-else/locations/EU/jobs/baton_dev_{run}_hist_orders_1"), run, "hist_orders"
        ),
        "dropped",
        "foreign_project",
        "job of project 'someone-else', this is 'baton-local'",
    ),
]


def body_of(case: Case, world: World) -> bytes:
    return case.body(world.run_id) if callable(case.body) else case.body


def test_there_are_at_least_60_distinct_cases(world: World) -> None:
    assert len({case.id for case in CASES}) == len(CASES) >= 60
    assert len({(case.method, body_of(case, world), tuple(case.headers.items())) for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_messages_get_one_documented_outcome_and_change_nothing(world: World, case: Case) -> None:
    body = body_of(case, world)
    before, calls, letters = world.snapshot(), world.calls(), len(world.dead_letters.letters)
    headers = {"Content-Type": "application/json", **case.headers}
    response = world.client("bigquery_job_completed").open("/", method=case.method, data=body, headers=headers)

    answer = response.get_json()
    assert response.status_code == (405 if case.outcome == "405" else 200), answer
    new_letters = world.dead_letters.letters[letters:]
    if case.outcome == "verdict":
        assert answer == {"verdict": case.code, "released": []}
    else:
        key = {"dropped": "dropped", "ignored": "ignored", "405": "error"}[case.outcome]
        assert answer[key] == case.code, answer
        assert one_line(answer["message"]), answer["message"]
        if case.message.endswith("..."):
            assert answer["message"].startswith(case.message[:-3]), answer["message"]
        else:
            assert answer["message"] == case.message
    if case.outcome == "dropped":
        [(data, attributes)] = new_letters
        assert answer["dead_letter_id"] == f"dead-letter-{letters + 1}"
        assert (attributes["baton_reason"], attributes["baton_detail"], attributes["baton_payload"]) == (
            case.code,
            answer["message"],
            case.payload,
        )
        assert len(attributes) <= 100
        if case.payload == "push_body":
            assert data == body[:MAX_DEAD_LETTER_DATA]
            assert attributes.get("baton_truncated_from") == (str(len(body)) if len(body) > MAX_DEAD_LETTER_DATA else None)
            if b'"messageId": "4711"' in body:
                assert attributes["baton_source_message_id"] == "4711", "a cut dead letter still says which message it was"
    else:
        assert new_letters == []
    assert world.snapshot() == before
    assert world.calls() == calls


def test_a_dead_letter_keeps_the_message_and_says_where_it_came_from(world: World) -> None:
    body = push(b"[1]", attributes={"logging.googleapis.com/timestamp": "2026-11-27T06:00:00Z", "googclient_x": "y"})
    response = world.client("bigquery_job_completed").post("/", data=body, content_type="application/json")
    assert response.get_json()["dropped"] == "not_an_object"
    data, attributes = world.dead_letters.letters[-1]
    assert data == b"[1]"
    assert attributes == {
        "logging.googleapis.com/timestamp": "2026-11-27T06:00:00Z",  # the message's own attributes stay
        "baton_reason": "not_an_object",
        "baton_detail": "payload is an array, not a JSON object",
        "baton_payload": "message_data",
        "baton_source_message_id": "4711",
        "baton_source_subscription": "projects/baton-local/subscriptions/baton-dev-job-completed-push",
    }


def test_when_the_dead_letter_topic_fails_pub_sub_redelivers(world: World) -> None:
    world.dead_letters.fail = TransientError("dead-letter topic: 503 unavailable")
    response = world.client("bigquery_job_completed").post("/", data=b"garbage", content_type="application/json")
    assert response.status_code == 503
    assert response.get_json() == {"error": "TransientError", "message": "dead-letter topic: 503 unavailable"}


def failing_store(monkeypatch: pytest.MonkeyPatch, world: World, error: Exception) -> None:
    def fail(_fn: object) -> object:
        raise error

    monkeypatch.setattr(world.store, "transact", fail)


@pytest.mark.parametrize(
    ("error", "status"),
    [(TransientError("Spanner: 503 unavailable"), 503), (RuntimeError("a bug"), 500)],
    ids=["transient", "bug"],
)
def test_failures_are_redelivered_until_the_last_attempt_which_dead_letters_with_the_reason(
    world: World, monkeypatch: pytest.MonkeyPatch, error: Exception, status: int
) -> None:
    monkeypatch.setattr(world, "settings", dataclasses.replace(world.settings, max_delivery_attempts=5))
    failing_store(monkeypatch, world, error)
    completion = json.dumps(done_entry(world.run_id, "hist_orders")).encode()
    app = world.client("bigquery_job_completed")
    app.application.testing = False  # a bug answers 500 as in production, instead of raising into the test

    early = app.post("/", data=_with_attempt(completion, 4))
    last = app.post("/", data=_with_attempt(completion, 5))

    assert early.status_code == status
    assert last.status_code == 200
    answer = last.get_json()
    assert answer["dropped"] == "gave_up"
    assert answer["message"] == f"{type(error).__name__}: {error}"
    data, attributes = world.dead_letters.letters[-1]
    assert data == completion
    assert (attributes["baton_reason"], attributes["baton_delivery_attempts"]) == ("gave_up", "5")


def _with_attempt(data: bytes, attempt: int) -> bytes:
    body = json.loads(push(data))
    body["deliveryAttempt"] = attempt
    return json.dumps(body).encode()
