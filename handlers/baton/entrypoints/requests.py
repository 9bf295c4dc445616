"""Request bodies of start_manifest and reconcile: decoded strictly, every refusal naming what is wrong."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from baton.entrypoints.json_body import kind_of, strict_json
from baton.errors import InvalidRequest

MAX_START_BODY = 64 * 1024
MAX_RECONCILE_BODY = 1024


class RequestTooLarge(InvalidRequest):
    """The body is over the entry point's limit."""


@dataclass(frozen=True)
class StartCommand:
    manifest: str
    params: dict[str, Any]
    select: str | None = None  # dbt-style graph selection (manifests/selection.py)
    exclude: str | None = None


def decode_start(body: bytes) -> StartCommand:
    """`{"manifest": "name", "params": {...}, "select": "...", "exclude": "..."}` (all but manifest optional);
    anything else is a 400 that says what is wrong."""
    if len(body) > MAX_START_BODY:
        raise RequestTooLarge(f"body is {len(body)} bytes; the limit is {MAX_START_BODY}")
    data = strict_json(body, "body")
    if not isinstance(data, dict):
        raise InvalidRequest(f"body must be a JSON object, got {kind_of(data)}")
    unknown = sorted(set(data) - {"manifest", "params", "select", "exclude"})
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}")
    manifest = data.get("manifest")
    if not isinstance(manifest, str) or not manifest:
        raise InvalidRequest("'manifest' must be a non-empty string")
    params = data.get("params", {})
    if not isinstance(params, dict):
        raise InvalidRequest(f"'params' must be an object, got {kind_of(params)}")
    selection = {}
    for name in ("select", "exclude"):
        value = data.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > 4096):
            raise InvalidRequest(f"'{name}' must be a string of at most 4096 characters, got {kind_of(value)}")
        selection[name] = value
    return StartCommand(manifest, params, **selection)


def decode_reconcile(body: bytes) -> None:
    """The reconciler takes no parameters: no body, or the `{}` Cloud Scheduler sends. Anything else is a 400
    rather than silently ignored, since it is most likely a request meant for another entry point."""
    if len(body) > MAX_RECONCILE_BODY:
        raise RequestTooLarge(f"body is {len(body)} bytes; reconcile takes no body")
    if not body.strip():
        return
    data = strict_json(body, "body")
    if isinstance(data, dict) and data:
        fields = ", ".join(repr(key)[:60] for key in sorted(data)[:5])
        raise InvalidRequest(f"reconcile takes no body, or {{}}; got an object with field(s) {fields}")
    if data != {}:
        raise InvalidRequest(f"reconcile takes no body, or {{}}; got {kind_of(data)}")
