"""start_manifest refuses bad input with one documented status and one line, and writes nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from tests.badinput.conftest import World, one_line

BIG = 64 * 1024


@dataclass(frozen=True)
class Case:
    id: str
    body: bytes
    status: int
    error: str
    message: str  # exact, or a prefix when it ends with "..."
    method: str = "POST"
    content_type: str = "application/json"


def params(**values: object) -> bytes:
    return json.dumps({"manifest": "elt_daily", "params": {"run_date": "2026-11-27", **values}}).encode()


def backfill(**fields: object) -> bytes:
    return json.dumps({"manifest": "elt_daily", **fields}).encode()


OVER = json.dumps({"manifest": "elt_daily", "params": {"run_date": "2026-11-27", "pad": "x" * BIG}}).encode()
LONG_NAME = json.dumps({"manifest": "m" * 70_000}).encode()
NOT_OBJECT = "body must be a JSON object, got "
NO_MANIFEST = "'manifest' must be a non-empty string"
SURROGATE = "body is not plain JSON: a lone UTF-16 surrogate (\\ud800-\\udfff) is not text"

CASES = [
    Case("get", b"", 405, "MethodNotAllowed", "use POST", method="GET"),
    Case("put", b'{"manifest": "elt_daily"}', 405, "MethodNotAllowed", "use POST", method="PUT"),
    Case("delete", b"", 405, "MethodNotAllowed", "use POST", method="DELETE"),
    Case("patch", b'{"manifest": "elt_daily"}', 405, "MethodNotAllowed", "use POST", method="PATCH"),
    Case("options", b"", 405, "MethodNotAllowed", "use POST", method="OPTIONS"),
    Case("empty body", b"", 400, "InvalidRequest", "body is not JSON: Expecting value: line 1 column 1 (char 0)"),
    Case("not json", b"start elt_daily please", 400, "InvalidRequest", "body is not JSON: Expecting value: ..."),
    Case(
        "form encoded",
        b"manifest=elt_daily",
        400,
        "InvalidRequest",
        "body is not JSON: ...",
        content_type="application/x-www-form-urlencoded",
    ),
    Case("not utf-8", b'{"manifest": "\xff\xfe"}', 400, "InvalidRequest", "body is not JSON: 'utf-8' codec can't decode..."),
    Case("truncated json", b'{"manifest": "elt_daily"', 400, "InvalidRequest", "body is not JSON: Expecting ',' delimiter..."),
    Case("trailing garbage", b'{"manifest": "elt_daily"} x', 400, "InvalidRequest", "body is not JSON: Extra data..."),
    Case("array", b'["elt_daily"]', 400, "InvalidRequest", NOT_OBJECT + "an array"),
    Case("string", b'"elt_daily"', 400, "InvalidRequest", NOT_OBJECT + "a string"),
    Case("number", b"42", 400, "InvalidRequest", NOT_OBJECT + "a number"),
    Case("null", b"null", 400, "InvalidRequest", NOT_OBJECT + "null"),
    Case("boolean", b"true", 400, "InvalidRequest", NOT_OBJECT + "a boolean"),
    Case(
        "NaN",
        b'{"manifest": "elt_daily", "params": {"big_order_threshold": NaN}}',
        400,
        "InvalidRequest",
        "body is not plain JSON: NaN is not JSON",
    ),
    Case(
        "infinity",
        b'{"manifest": "elt_daily", "params": {"big_order_threshold": 1e400}}',
        400,
        "InvalidRequest",
        "body is not plain JSON: the number 1e400 is out of range",
    ),
    Case(
        "duplicate key",
        b'{"manifest": "nope", "manifest": "elt_daily"}',
        400,
        "InvalidRequest",
        "body is not plain JSON: duplicate key 'manifest'",
    ),
    Case(
        "nested too deep", b"[" * 20000 + b"]" * 20000, 400, "InvalidRequest", "body is not JSON Baton reads: nested too deeply"
    ),
    Case("no fields", b"{}", 400, "InvalidRequest", NO_MANIFEST),
    Case("manifest empty", b'{"manifest": ""}', 400, "InvalidRequest", NO_MANIFEST),
    Case("manifest number", b'{"manifest": 7}', 400, "InvalidRequest", NO_MANIFEST),
    Case("manifest null", b'{"manifest": null}', 400, "InvalidRequest", NO_MANIFEST),
    Case("manifest array", b'{"manifest": ["elt_daily"]}', 400, "InvalidRequest", NO_MANIFEST),
    Case("manifest object", b'{"manifest": {"name": "elt_daily"}}', 400, "InvalidRequest", NO_MANIFEST),
    Case("wrong field name", b'{"name": "elt_daily"}', 400, "InvalidRequest", "unknown field(s): name"),
    Case("extra field", b'{"manifest": "elt_daily", "dry_run": true}', 400, "InvalidRequest", "unknown field(s): dry_run"),
    Case(
        "select not a string",
        b'{"manifest": "elt_daily", "select": ["land_raw"]}',
        400,
        "InvalidRequest",
        "'select' must be a string of at most 4096 characters, got an array",
    ),
    Case(
        "select names no job",
        b'{"manifest": "elt_daily", "select": "+no_such_job"}',
        400,
        "InvalidSelection",
        "elt_daily: --select '+no_such_job': no job matches 'no_such_job'",
    ),
    Case(
        "exclude leaves nothing",
        b'{"manifest": "elt_daily", "exclude": "land_raw+"}',
        400,
        "InvalidSelection",
        "elt_daily: the selection leaves no job to run",
    ),
    Case(
        "params array",
        b'{"manifest": "elt_daily", "params": []}',
        400,
        "InvalidRequest",
        "'params' must be an object, got an array",
    ),
    Case(
        "params string",
        b'{"manifest": "elt_daily", "params": "run_date=2026-11-27"}',
        400,
        "InvalidRequest",
        "'params' must be an object, got a string",
    ),
    Case(
        "params null", b'{"manifest": "elt_daily", "params": null}', 400, "InvalidRequest", "'params' must be an object, got null"
    ),
    *[
        Case(f"backfill {name}", backfill(**body), 400, error, message)
        for name, body, error, message in [
            (
                "not an object",
                {"backfill": "2026-11-01..2026-11-05"},
                "InvalidRequest",
                "'backfill' must be an object, got a string",
            ),
            (
                "unknown field",
                {"backfill": {"from": "2026-11-01", "to": "2026-11-05", "until": "2026-11-09"}},
                "InvalidRequest",
                "unknown field(s) in 'backfill': 'until' (known: from, max_active_runs, param, to)",
            ),
            ("no from", {"backfill": {"to": "2026-11-05"}}, "InvalidRequest", "'backfill.from' is required (a date YYYY-MM-DD)"),
            (
                "from impossible",
                {"backfill": {"from": "2026-02-30", "to": "2026-03-05"}},
                "InvalidRequest",
                "'backfill.from' must be a date YYYY-MM-DD, got '2026-02-30'",
            ),
            (
                "to as number",
                {"backfill": {"from": "2026-11-01", "to": 20261105}},
                "InvalidRequest",
                "'backfill.to' must be a date YYYY-MM-DD, got a number",
            ),
            (
                "to with a time",
                {"backfill": {"from": "2026-11-01", "to": "2026-11-05T00:00:00"}},
                "InvalidRequest",
                "'backfill.to' must be a date YYYY-MM-DD, got '2026-11-05T00:00:00'",
            ),
            (
                "max active as text",
                {"backfill": {"from": "2026-11-01", "to": "2026-11-05", "max_active_runs": "3"}},
                "InvalidRequest",
                "'backfill.max_active_runs' must be an integer, got a string",
            ),
            (
                "max active as boolean",
                {"backfill": {"from": "2026-11-01", "to": "2026-11-05", "max_active_runs": True}},
                "InvalidRequest",
                "'backfill.max_active_runs' must be an integer, got a boolean",
            ),
            (
                "param not a string",
                {"backfill": {"from": "2026-11-01", "to": "2026-11-05", "param": 7}},
                "InvalidRequest",
                "'backfill.param' must be a param name (a non-empty string), got a number",
            ),
            (
                "max active zero",
                {"backfill": {"from": "2026-11-01", "to": "2026-11-05", "max_active_runs": 0}},
                "InvalidBackfill",
                "elt_daily: backfill: max active runs must be 1 to 100, got 0",
            ),
            (
                "range backwards",
                {"backfill": {"from": "2026-11-05", "to": "2026-11-01"}},
                "InvalidBackfill",
                "elt_daily: backfill: the range ends (2026-11-01) before it begins (2026-11-05)",
            ),
            (
                "range too long",
                {"backfill": {"from": "2020-01-01", "to": "2026-11-05"}},
                "InvalidBackfill",
                "elt_daily: backfill: 2501 dates; a backfill covers at most 366 (split the range)",
            ),
            (
                "param undeclared",
                {"backfill": {"from": "2026-11-01", "to": "2026-11-05", "param": "day"}},
                "InvalidBackfill",
                "elt_daily: backfill: param 'day' is not declared (declared: ...",
            ),
            (
                "param not a date",
                {"backfill": {"from": "2026-11-01", "to": "2026-11-05", "param": "big_order_threshold"}},
                "InvalidBackfill",
                "elt_daily: backfill: param 'big_order_threshold' is FLOAT64; a backfill binds a DATE param",
            ),
            (
                "date param given too",
                {"params": {"run_date": "2026-11-27"}, "backfill": {"from": "2026-11-01", "to": "2026-11-05"}},
                "InvalidBackfill",
                "elt_daily: backfill: param 'run_date' is the backfill's date; it cannot also be given",
            ),
            (
                "bad other param",
                {"params": {"big_order_threshold": "lots"}, "backfill": {"from": "2026-11-01", "to": "2026-11-02"}},
                "InvalidParams",
                "elt_daily: param 'big_order_threshold': expected a number, got 'lots'",
            ),
        ]
    ],
    Case("unknown manifest", b'{"manifest": "nope"}', 404, "ManifestNotFound", "manifest 'nope' not found"),
    Case(
        "path traversal",
        b'{"manifest": "../manifests/elt_daily"}',
        404,
        "ManifestNotFound",
        "manifest '../manifests/elt_daily' not found",
    ),
    Case("upper case", b'{"manifest": "ELT_DAILY"}', 404, "ManifestNotFound", "manifest 'ELT_DAILY' not found"),
    Case("file name", b'{"manifest": "elt_daily.yaml"}', 404, "ManifestNotFound", "manifest 'elt_daily.yaml' not found"),
    Case("newline in name", b'{"manifest": "elt_daily\\nrm"}', 404, "ManifestNotFound", "manifest 'elt_daily; rm' not found"),
    Case("nul in name", b'{"manifest": "elt_daily\\u0000"}', 404, "ManifestNotFound", "manifest 'elt_daily\x00' not found"),
    Case("very long name", json.dumps({"manifest": "m" * 5000}).encode(), 404, "ManifestNotFound", "manifest 'mmmm..."),
    Case(
        "invalid yaml", b'{"manifest": "broken_yaml"}', 400, "ManifestInvalid", "manifests0/broken_yaml.yaml: not valid YAML: ..."
    ),
    Case("cyclic manifest", b'{"manifest": "cyclic"}', 400, "ManifestInvalid", "manifests0/cyclic.yaml: job 'a': ..."),
    Case(
        "misnamed manifest",
        b'{"manifest": "misnamed"}',
        400,
        "ManifestInvalid",
        "manifests0/misnamed.yaml: name 'other_name' differs from the file name 'misnamed'",
    ),
    Case(
        "missing required param",
        b'{"manifest": "needs_param"}',
        400,
        "InvalidParams",
        "needs_param: param 'region' is required (STRING)",
    ),
    Case(
        "date not a date",
        params(run_date="yesterday"),
        400,
        "InvalidParams",
        "elt_daily: param 'run_date': expected a date YYYY-MM-DD, got 'yesterday'",
    ),
    Case(
        "date impossible",
        params(run_date="2026-02-30"),
        400,
        "InvalidParams",
        "elt_daily: param 'run_date': expected a date YYYY-MM-DD, got '2026-02-30'",
    ),
    Case(
        "date as number",
        params(run_date=20261127),
        400,
        "InvalidParams",
        "elt_daily: param 'run_date': expected a date YYYY-MM-DD, got 20261127",
    ),
    Case(
        "date as object",
        params(run_date={"y": 2026}),
        400,
        "InvalidParams",
        "elt_daily: param 'run_date': expected a date YYYY-MM-DD, got {'y': 2026}",
    ),
    Case(
        "float as text",
        params(big_order_threshold="lots"),
        400,
        "InvalidParams",
        "elt_daily: param 'big_order_threshold': expected a number, got 'lots'",
    ),
    Case(
        "float as boolean",
        params(big_order_threshold=True),
        400,
        "InvalidParams",
        "elt_daily: param 'big_order_threshold': expected a number, got True",
    ),
    Case(
        "unknown param",
        params(colour="red"),
        400,
        "InvalidParams",
        "elt_daily: unknown param 'colour' (declared: big_order_threshold, run_date)",
    ),
    Case(
        "sql in param name",
        params(**{"run_date; DROP TABLE x": "1"}),
        400,
        "InvalidParams",
        "elt_daily: unknown param 'run_date; DROP TABLE x' (declared: big_order_threshold, run_date)",
    ),
    # --- text no encoder takes, names with a trailing newline, numbers beyond int64 -------------------------
    Case("lone surrogate in the name", b'{"manifest": "elt_\\ud800daily"}', 400, "InvalidRequest", SURROGATE),
    Case("lone low surrogate in the name", b'{"manifest": "\\udfffelt_daily"}', 400, "InvalidRequest", SURROGATE),
    Case("lone surrogate in a param value", params(run_date="2026-11-27\ud800"), 400, "InvalidRequest", SURROGATE),
    Case("lone surrogate in a param name", params(**{"run_date\udc00": "x"}), 400, "InvalidRequest", SURROGATE),
    Case("lone surrogate in an unknown field", b'{"\\ud83d": 1, "manifest": "elt_daily"}', 400, "InvalidRequest", SURROGATE),
    Case("name with a trailing newline", b'{"manifest": "elt_daily\\n"}', 404, "ManifestNotFound", "manifest 'elt_daily..."),
    Case("name with a trailing space", b'{"manifest": "elt_daily "}', 404, "ManifestNotFound", "manifest 'elt_daily ' not found"),
    Case("name of blanks", b'{"manifest": "   "}', 404, "ManifestNotFound", "manifest ' ' not found"),
    Case(
        "name with a look-alike letter", '{"manifest": "elt_d\u0430ily"}'.encode(), 404, "ManifestNotFound", "manifest 'elt_d..."
    ),
    Case("name over 63 characters", json.dumps({"manifest": "m" * 64}).encode(), 404, "ManifestNotFound", "manifest 'mmm..."),
    Case("date with a trailing newline", params(run_date="2026-11-27\n"), 400, "InvalidParams", "elt_daily: param 'run_date'..."),
    Case("date beyond int64", params(run_date=2**64), 400, "InvalidParams", "elt_daily: param 'run_date'..."),
    Case("date in year 10000", params(run_date="10000-01-01"), 400, "InvalidParams", "elt_daily: param 'run_date'..."),
    Case("body over limit", OVER, 413, "RequestTooLarge", f"body is {len(OVER)} bytes; the limit is {BIG}"),
    Case("name over limit", LONG_NAME, 413, "RequestTooLarge", f"body is {len(LONG_NAME)} bytes; the limit is {BIG}"),
    # --- more of the cloud-faults issue's classes ------------------------------------------------------------
    Case(
        "threshold beyond float64",
        b'{"manifest": "elt_daily", "params": {"run_date": "2026-11-27", "big_order_threshold": 1e400}}',
        400,
        "InvalidRequest",
        "body is not plain JSON: the number 1e400 is out of range",
    ),
    Case("date below int64", params(run_date=-(2**63) - 1), 400, "InvalidParams", "elt_daily: param 'run_date'..."),
    Case("date in year 0", params(run_date="0000-12-31"), 400, "InvalidParams", "elt_daily: param 'run_date'..."),
    Case("date with a trailing CRLF", params(run_date="2026-11-27\r\n"), 400, "InvalidParams", "elt_daily: param 'run_date'..."),
    Case("name with a tab", b'{"manifest": "elt\\tdaily"}', 404, "ManifestNotFound", "manifest 'elt..."),
    Case(
        "name with a surrogate pair",
        b'{"manifest": "elt_daily\\ud83d\\ude00"}',
        404,
        "ManifestNotFound",
        "manifest 'elt_daily...",
    ),
    Case("legal 8 MB body", params(pad="x" * 8_000_000), 413, "RequestTooLarge", f"body is 8000074 bytes; the limit is {BIG}"),
    Case("101 params", params(**{f"p{i:03d}": "x" for i in range(101)}), 400, "InvalidParams", "elt_daily: unknown param..."),
]


def test_there_are_at_least_60_distinct_cases() -> None:
    assert len({case.id for case in CASES}) == len(CASES) >= 60
    assert len({(case.method, case.body) for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_start_requests_get_one_documented_answer_and_write_nothing(world: World, case: Case) -> None:
    before, calls = world.snapshot(), world.calls()
    response = world.client("start_manifest").open("/", method=case.method, data=case.body, content_type=case.content_type)

    body = response.get_json()
    assert (response.status_code, body["error"]) == (case.status, case.error), body
    assert one_line(body["message"]), body["message"]
    if case.message.endswith("..."):
        assert body["message"].startswith(case.message[:-3]), body["message"]
    else:
        assert body["message"] == case.message
    assert world.snapshot() == before
    assert world.calls() == calls
