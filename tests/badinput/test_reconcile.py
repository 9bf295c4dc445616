"""reconcile takes a POST with no body or `{}` (what Cloud Scheduler sends); anything else is refused before any work.

A body with content is most likely a request meant for another entry point, so it is
a 400 rather than silently ignored; nothing is read from Spanner or asked of BigQuery.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.badinput.conftest import World, one_line

NOT_JSON = "body is not JSON: ..."
NO_BODY = "reconcile takes no body, or {}; got "
SURROGATE = "body is not plain JSON: a lone UTF-16 surrogate (\\ud800-\\udfff) is not text"


@dataclass(frozen=True)
class Case:
    id: str
    body: bytes
    status: int
    message: str  # exact, or a prefix when it ends with "..."
    method: str = "POST"


CASES = [
    *(Case(method.lower(), b"", 405, "use POST", method=method) for method in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS")),
    Case("put with {}", b"{}", 405, "use POST", method="PUT"),
    *(
        Case(f"text {text!r}", text.encode(), 400, NOT_JSON)
        for text in ("reconcile", "run now", "{", "}", "{}}", "{} {}", "[", "null,", "'{}'", "<reconcile/>", "force=true")
    ),
    Case("binary", b"\x00\x01\x02", 400, NOT_JSON),
    Case(
        "not utf-8",
        b'{"\xff": 1}',
        400,
        "body is not JSON: 'utf-8' codec can't decode byte 0xff in position 2: invalid start byte",
    ),
    Case("empty array", b"[]", 400, NO_BODY + "an array"),
    Case("array of {}", b"[{}]", 400, NO_BODY + "an array"),
    Case("empty string", b'""', 400, NO_BODY + "a string"),
    Case("{} as a string", b'"{}"', 400, NO_BODY + "a string"),
    Case("zero", b"0", 400, NO_BODY + "a number"),
    Case("fraction", b"1.5", 400, NO_BODY + "a number"),
    Case("negative", b"-1", 400, NO_BODY + "a number"),
    Case("true", b"true", 400, NO_BODY + "a boolean"),
    Case("false", b"false", 400, NO_BODY + "a boolean"),
    Case("null", b"null", 400, NO_BODY + "null"),
    Case("NaN", b"NaN", 400, "body is not plain JSON: NaN is not JSON"),
    Case("Infinity", b"Infinity", 400, "body is not plain JSON: Infinity is not JSON"),
    Case("out of range", b"1e400", 400, "body is not plain JSON: the number 1e400 is out of range"),
    Case("duplicate key", b'{"a": 1, "a": 1}', 400, "body is not plain JSON: duplicate key 'a'"),
    Case("nested too deep", b"[" * 1000, 400, "body is not JSON Baton reads: nested too deeply"),
    Case("a run ID", b'{"run_id": "5f0c1e7a9b2d4c6e8f1a3b5c7d9e0f21"}', 400, NO_BODY + "an object with field(s) 'run_id'"),
    Case("a start request", b'{"manifest": "elt_daily"}', 400, NO_BODY + "an object with field(s) 'manifest'"),
    Case("dry run", b'{"dry_run": true}', 400, NO_BODY + "an object with field(s) 'dry_run'"),
    Case("empty key", b'{"": ""}', 400, NO_BODY + "an object with field(s) ''"),
    Case("a limit", b'{"limit": 10}', 400, NO_BODY + "an object with field(s) 'limit'"),
    Case("a policy", b'{"batch": 1000000, "lost_after": 0}', 400, NO_BODY + "an object with field(s) 'batch', 'lost_after'"),
    Case("force", b'{"force": true}', 400, NO_BODY + "an object with field(s) 'force'"),
    Case("nested {}", b'{"{}": {}}', 400, NO_BODY + "an object with field(s) '{}'"),
    Case("null field", b'{"a": null}', 400, NO_BODY + "an object with field(s) 'a'"),
    Case("a Pub/Sub push", b'{"message": {"data": "e30="}}', 400, NO_BODY + "an object with field(s) 'message'"),
    # --- text no encoder takes, numbers beyond int64, trailing newlines inside values ----------------------
    Case("lone surrogate string", b'"\\ud800"', 400, SURROGATE),
    Case("lone surrogate key", b'{"\\udc00": 1}', 400, SURROGATE),
    Case("lone surrogate value", b'{"a": "x\\udbff"}', 400, SURROGATE),
    Case("lone surrogate in an array", b'["\\ud801"]', 400, SURROGATE),
    Case("reversed surrogate pair", b'"\\ude00\\ud83d"', 400, SURROGATE),
    Case("surrogate pair is text", b'"\\ud83d\\ude00"', 400, NO_BODY + "a string"),
    Case("beyond int64", b"9223372036854775808", 400, NO_BODY + "a number"),
    Case("batch beyond int64", b'{"batch": 99999999999999999999}', 400, NO_BODY + "an object with field(s) 'batch'"),
    Case("huge exponent", b"1e308", 400, NO_BODY + "a number"),
    Case("negative zero", b"-0", 400, NO_BODY + "a number"),
    Case("{} as a string with a newline", b'"{}\\n"', 400, NO_BODY + "a string"),
    Case("byte order mark", b"\xef\xbb\xbf[]", 400, NO_BODY + "an array"),
    Case("two objects on two lines", b"{}\n{}", 400, NOT_JSON),
    Case("comment", b"{} // scheduled", 400, NOT_JSON),
    Case("single-quoted key", b"{'a': 1}", 400, NOT_JSON),
    Case("trailing comma", b'{"a": 1,}', 400, NOT_JSON),
    Case("nested empty objects", b'{"a": {"b": {}}}', 400, NO_BODY + "an object with field(s) 'a'"),
    Case(
        "six fields", b'{"a":1,"b":1,"c":1,"d":1,"e":1,"f":1}', 400, NO_BODY + "an object with field(s) 'a', 'b', 'c', 'd', 'e'"
    ),
    Case("a key with a newline", b'{"a\\n": 1}', 400, NO_BODY + "an object with field(s) 'a\\n'"),
    Case(
        "a cancel request", b'{"cancel": "5f0c1e7a9b2d4c6e8f1a3b5c7d9e0f21"}', 400, NO_BODY + "an object with field(s) 'cancel'"
    ),
    Case("a retry request", b'{"retry": true}', 400, NO_BODY + "an object with field(s) 'retry'"),
    Case("an environment", b'{"environment": "dev"}', 400, NO_BODY + "an object with field(s) 'environment'"),
    Case("a page token", b'{"page_token": "x"}', 400, NO_BODY + "an object with field(s) 'page_token'"),
    Case("a Scheduler job name", b'{"job": "baton-dev-reconcile"}', 400, NO_BODY + "an object with field(s) 'job'"),
    Case("an audit entry", b'{"protoPayload": {}}', 400, NO_BODY + "an object with field(s) 'protoPayload'"),
    Case("a CloudEvent", b'{"specversion": "1.0", "type": "x"}', 400, NO_BODY + "an object with field(s) 'specversion', 'type'"),
    Case("an empty object in an array", b"[{}, {}]", 400, NO_BODY + "an array"),
    Case("spaces over the limit", b"{}" + b" " * 1100, 413, "body is 1102 bytes; reconcile takes no body"),
    Case("text over the limit", b"x" * 5000, 413, "body is 5000 bytes; reconcile takes no body"),
    Case(
        "start body over the limit",
        b'{"manifest": "' + b"m" * 65_000 + b'"}',
        413,
        "body is 65016 bytes; reconcile takes no body",
    ),
    # --- the classes of the cloud-faults issue, as a body sent to reconcile by mistake ------------------------
    Case("legal 8 MB body", b"{}" + b" " * 8_000_000, 413, "body is 8000002 bytes; reconcile takes no body"),
    Case(
        "a label with a trailing newline",
        b'{"labels": {"baton_env": "dev\\n"}}',
        400,
        NO_BODY + "an object with field(s) 'labels'",
    ),
    Case("a time after year 9999", b'{"before": "10000-01-01T00:00:00Z"}', 400, NO_BODY + "an object with field(s) 'before'"),
    Case("a time before year 1", b'{"since": "0000-12-31T23:59:59Z"}', 400, NO_BODY + "an object with field(s) 'since'"),
    Case(
        "a job of another project",
        b'{"jobName": "projects/someone-else/jobs/baton_dev_x_y_1"}',
        400,
        NO_BODY + "an object with field(s) 'jobName'",
    ),
    Case("a location not the environment's", b'{"location": "EU"}', 400, NO_BODY + "an object with field(s) 'location'"),
    Case("a limit below int64", b'{"limit": -9223372036854775809}', 400, NO_BODY + "an object with field(s) 'limit'"),
    Case("a push with a lone surrogate attribute", b'{"message": {"attributes": {"k": "\\udc00"}}}', 400, SURROGATE),
    Case(
        "101 fields",
        ("{" + ",".join(f'"f{i:03d}": 1' for i in range(101)) + "}").encode(),
        400,
        NO_BODY + "an object with field(s) 'f000', 'f001', 'f002', 'f003', 'f004'...",
    ),
]


def test_there_are_at_least_60_distinct_cases() -> None:
    assert len({case.id for case in CASES}) == len(CASES) >= 60
    assert len({(case.method, case.body) for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_reconcile_requests_are_refused_before_any_work(world: World, case: Case) -> None:
    before, calls = world.snapshot(), world.calls()
    response = world.client("reconcile").open("/", method=case.method, data=case.body, content_type="application/json")

    answer = response.get_json()
    assert response.status_code == case.status, answer
    error = {405: "MethodNotAllowed", 413: "RequestTooLarge", 400: "InvalidRequest"}[case.status]
    assert answer["error"] == error
    assert one_line(answer["message"]), answer["message"]
    if case.message.endswith("..."):
        assert answer["message"].startswith(case.message[:-3]), answer["message"]
    else:
        assert answer["message"] == case.message
    assert world.snapshot() == before
    assert world.calls() == calls


@pytest.mark.parametrize("body", [b"", b"{}", b" {} \n", b"\n"], ids=["none", "{}", "{} with spaces", "newline"])
def test_what_cloud_scheduler_sends_runs_the_reconciler(world: World, body: bytes) -> None:
    response = world.client("reconcile").post("/", data=body, content_type="application/json")
    assert response.status_code == 200, response.get_json()
    report = response.get_json()
    assert set(report) >= {"submitted", "healed", "resubmitted_lost", "checked_running", "abandoned_runs", "repaired_runs"}
    assert report["scanned"] >= 3, "the seeded run's three running jobs were read"
