"""HTTP edges of the entry points: decode request bodies, map Baton's errors to statuses.

Status policy (every outcome is listed in docs/failure-model.md):
  start_manifest          200 started; 400 bad body/params/manifest; 404 unknown manifest;
                          405 not POST; 413 too large; 503 storage or BigQuery unavailable.
  bigquery_job_completed  200 recorded (`verdict`), ignored (`ignored`: not Baton's event) or
                          dropped (`dropped`: cannot be processed, dead-lettered with its reason);
                          503 transient failure, so Pub/Sub redelivers with backoff.
  reconcile               200 report; 400 a body other than none or {}; 405 not POST; 413 too large;
                          503 storage unavailable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from baton.audit_log import IgnoreReason
from baton.errors import (
    BatonError,
    InvalidParams,
    InvalidRequest,
    ManifestInvalid,
    ManifestNotFound,
    RunNotFound,
    TransientError,
)
from baton.json_text import kind_of

MAX_START_BODY = 64 * 1024
MAX_RECONCILE_BODY = 1024

# Entries that cannot be any routed audit event of a job: acknowledged, but dead-lettered with the
# reason rather than only counted like another service's or environment's entries.
DEAD_LETTER_REASONS = frozenset(
    {IgnoreReason.NOT_AN_OBJECT, IgnoreReason.NOT_A_LOG_ENTRY, IgnoreReason.MALFORMED, IgnoreReason.MALFORMED_LABELS}
)


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
    data = strict_json(body)
    if not isinstance(data, dict):
        raise InvalidRequest(f"body must be a JSON object, got {kind_of(data)}")
    unknown = sorted(set(data) - {"manifest", "params"})
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}")
    manifest = data.get("manifest")
    if not isinstance(manifest, str) or not manifest:
        raise InvalidRequest("'manifest' must be a non-empty string")
    params = data.get("params", {})
    if not isinstance(params, dict):
        raise InvalidRequest(f"'params' must be an object, got {kind_of(params)}")
    return StartCommand(manifest, params)


class _NotPlainJson(ValueError):
    """JSON that Python would accept but that is ambiguous or not JSON at all (NaN, duplicate keys)."""


def _refuse_constant(name: str) -> object:
    raise _NotPlainJson(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _NotPlainJson(f"the number {text[:40]} is out of range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _NotPlainJson(f"duplicate key '{key[:60]}'")
        result[key] = value
    return result


def strict_json(body: bytes) -> object:
    """Parse a request body, refusing NaN, infinities, duplicate keys and nesting Python cannot follow."""
    try:
        return json.loads(body, parse_constant=_refuse_constant, parse_float=_finite, object_pairs_hook=_unique_keys)
    except _NotPlainJson as exc:
        raise InvalidRequest(f"body is not plain JSON: {exc}") from None
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise InvalidRequest(f"body is not JSON: {one_line(str(exc))}") from None
    except RecursionError:
        raise InvalidRequest("body is not JSON Baton reads: nested too deeply") from None


def decode_reconcile(body: bytes) -> None:
    """The reconciler takes no parameters: no body, or the `{}` Cloud Scheduler sends. Anything else is a 400
    rather than silently ignored, since it is most likely a request meant for another entry point."""
    if len(body) > MAX_RECONCILE_BODY:
        raise RequestTooLarge(f"body is {len(body)} bytes; reconcile takes no body")
    if not body.strip():
        return
    data = strict_json(body)
    if isinstance(data, dict) and data:
        fields = ", ".join(repr(key)[:60] for key in sorted(data)[:5])
        raise InvalidRequest(f"reconcile takes no body, or {{}}; got an object with field(s) {fields}")
    if data != {}:
        raise InvalidRequest(f"reconcile takes no body, or {{}}; got {kind_of(data)}")


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
    body: dict[str, Any] = {"error": type(error).__name__, "message": one_line(str(error))}
    problems = getattr(error, "problems", None)
    if problems:
        body["problems"] = problems
    return body


MAX_MESSAGE = 500


def one_line(text: str) -> str:
    """A message as one log-friendly line: lines joined with '; ', at most MAX_MESSAGE characters."""
    line = "; ".join(part.strip() for part in text.splitlines() if part.strip())
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 3] + "..."
