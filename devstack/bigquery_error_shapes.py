"""BigQuery's error shapes, as the local façade answers them: HTTP error bodies and job errorResults.

The engine (bqemulator over DuckDB) words some failures its own way: a table written into a missing
dataset fails with "Catalog Error: Schema with name p__d does not exist!", and its REST 404s say
"Not found: dataset:p.d". BigQuery says `notFound` with "Not found: Dataset p:d ...": clients and
Baton classify by that reason, so the façade rewrites the engine's words into BigQuery's.
"""

from __future__ import annotations

import json
import re
from typing import Any

import requests

__all__ = ["REASON_BY_STATUS", "engine_job_error", "error_body", "in_bigquery_words", "rewrite_not_found_body"]

STATUS_BY_CODE = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
REASON_BY_STATUS = {400: "invalid", 403: "accessDenied", 404: "notFound", 409: "duplicate", 501: "notImplemented"}

_MISSING_SCHEMA = re.compile(r"Catalog Error: Schema with name (?P<project>[a-z0-9-]+?)__(?P<dataset>\w+) does not exist")
_MISSING_TABLE = re.compile(r"Catalog Error: Table with name (?P<table>[\w.-]+) does not exist")
_ENGINE_NOT_FOUND = re.compile(r"Not found: (?P<kind>dataset|table|job):(?P<project>[a-z0-9-]+)\.(?P<rest>[\w.-]+)")


def error_body(code: int, message: str, reason: str) -> dict[str, Any]:
    """The JSON body of a failed BigQuery API call (what google-api-core turns into an exception)."""
    return {
        "error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": STATUS_BY_CODE.get(code, "UNKNOWN"),
        }
    }


def in_bigquery_words(error: dict[str, Any], location: str) -> dict[str, Any]:
    """A job errorResult with the engine's catalog errors said as BigQuery says them (others unchanged)."""
    message = str(error.get("message", ""))
    schema = _MISSING_SCHEMA.search(message)
    if schema:
        text = f"Not found: Dataset {schema['project']}:{schema['dataset']} was not found in location {location}"
        return {"reason": "notFound", "message": text}
    table = _MISSING_TABLE.search(message)
    if table:
        return {"reason": "notFound", "message": f"Not found: Table {table['table']} was not found in location {location}"}
    return error


def engine_job_error(response: requests.Response, location: str) -> dict[str, Any]:
    """The engine's HTTP error as a job errorResult: BigQuery reports query failures on the job, not the call."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    first: dict[str, Any] = {}
    if isinstance(error, dict) and error.get("errors"):
        first = dict(error["errors"][0])
    default_reason = REASON_BY_STATUS.get(response.status_code, "backendError")
    message = first.get("message") or (error or {}).get("message") or response.text[:500]
    return in_bigquery_words({"reason": first.get("reason") or default_reason, "message": message}, location)


def rewrite_not_found_body(content: bytes) -> bytes:
    """An engine 404 ("Not found: dataset:p.d") as BigQuery words it ("Not found: Dataset p:d"); tables and jobs alike."""
    try:
        message = str(json.loads(content)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return content
    match = _ENGINE_NOT_FOUND.search(message)
    if not match:
        return content
    text = f"Not found: {match['kind'].capitalize()} {match['project']}:{match['rest']}"
    return json.dumps(error_body(404, text, "notFound")).encode()
