"""HTTP edges of the entry points: decode request bodies, map Baton's errors to statuses.

Status policy (documented in the README):
  start_manifest          200 started; 400 bad body/params/manifest; 404 unknown manifest;
                          405 not POST; 413 too large; 503 storage or BigQuery unavailable.
  bigquery_job_completed  200 recorded, ignored (not Baton's, other environment, duplicate) or
                          malformed (dead-lettered with its reason, retrying cannot help);
                          503 transient failure, so Pub/Sub redelivers with backoff.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from baton.errors import (
    BatonError,
    InvalidParams,
    InvalidRequest,
    ManifestInvalid,
    ManifestNotFound,
    RunNotFound,
    TransientError,
)

MAX_START_BODY = 64 * 1024


class RequestTooLarge(InvalidRequest):
    """The body is over the entry point's limit."""


@dataclass(frozen=True)
class StartCommand:
    manifest: str
    params: dict[str, Any]


def decode_start(body: bytes) -> StartCommand:
    """`{"manifest": "name", "params": {...}}`; anything else is a 400 that says what is wrong."""
    if len(body) > MAX_START_BODY:
        raise RequestTooLarge(f"body is {len(body)} bytes; the limit is {MAX_START_BODY}")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest(f"body must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - {"manifest", "params"})
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}")
    manifest = data.get("manifest")
    if not isinstance(manifest, str) or not manifest:
        raise InvalidRequest("'manifest' must be a non-empty string")
    params = data.get("params", {})
    if not isinstance(params, dict):
        raise InvalidRequest(f"'params' must be an object, got {type(params).__name__}")
    return StartCommand(manifest, params)


def status_for(error: BatonError) -> int:
    if isinstance(error, RequestTooLarge):
        return 413
    if isinstance(error, InvalidRequest | InvalidParams | ManifestInvalid):
        return 400
    if isinstance(error, ManifestNotFound | RunNotFound):
        return 404
    if isinstance(error, TransientError):
        return 503
    return 500


def error_body(error: BatonError) -> dict[str, Any]:
    body: dict[str, Any] = {"error": type(error).__name__, "message": str(error)}
    problems = getattr(error, "problems", None)
    if problems:
        body["problems"] = problems
    return body
