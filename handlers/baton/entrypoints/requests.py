"""Request bodies of start_manifest and reconcile: decoded strictly, every refusal naming what is wrong."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from baton.entrypoints.json_body import kind_of, strict_json
from baton.errors import InvalidRequest

MAX_START_BODY = 64 * 1024
MAX_RECONCILE_BODY = 1024


class RequestTooLarge(InvalidRequest):
    """The body is over the entry point's limit."""


@dataclass(frozen=True)
class BackfillRequest:
    """The `backfill` object of a start body: one run per date from `first` to `last` (service/backfills.py)."""

    first: dt.date
    last: dt.date
    param: str | None = None  # default: the manifest's only DATE param
    max_active_runs: int = 1


@dataclass(frozen=True)
class StartCommand:
    manifest: str
    params: dict[str, Any]
    select: str | None = None  # dbt-style graph selection (manifests/selection.py)
    exclude: str | None = None
    backfill: BackfillRequest | None = None


_BACKFILL_FIELDS = {"from", "to", "param", "max_active_runs"}


def decode_start(body: bytes) -> StartCommand:
    """`{"manifest": "name", "params": {...}, "select": "...", "exclude": "...", "backfill": {...}}` (all but
    manifest optional); `backfill` is `{"from": "YYYY-MM-DD", "to": "YYYY-MM-DD", "param": "run_date",
    "max_active_runs": 3}` (from and to required) and asks for a backfill instead of one run. Anything else
    is a 400 that says what is wrong."""
    if len(body) > MAX_START_BODY:
        raise RequestTooLarge(f"body is {len(body)} bytes; the limit is {MAX_START_BODY}")
    data = strict_json(body, "body")
    if not isinstance(data, dict):
        raise InvalidRequest(f"body must be a JSON object, got {kind_of(data)}")
    unknown = sorted(set(data) - {"manifest", "params", "select", "exclude", "backfill"})
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
    backfill = _decode_backfill(data["backfill"]) if "backfill" in data else None
    return StartCommand(manifest, params, backfill=backfill, **selection)


def _decode_backfill(data: object) -> BackfillRequest:
    """The shape of a backfill request; the service checks the range, the param and the limit against the manifest."""
    if not isinstance(data, dict):
        raise InvalidRequest(f"'backfill' must be an object, got {kind_of(data)}")
    unknown = sorted(set(data) - _BACKFILL_FIELDS)
    if unknown:
        fields = ", ".join(repr(key)[:60] for key in unknown[:5])
        raise InvalidRequest(f"unknown field(s) in 'backfill': {fields} (known: from, max_active_runs, param, to)")
    first, last = (_date(data, name) for name in ("from", "to"))
    param = data.get("param")
    if param is not None and (not isinstance(param, str) or not param or len(param) > 128):
        raise InvalidRequest(f"'backfill.param' must be a param name (a non-empty string), got {kind_of(param)}")
    max_active = data.get("max_active_runs", 1)
    if isinstance(max_active, bool) or not isinstance(max_active, int):
        raise InvalidRequest(f"'backfill.max_active_runs' must be an integer, got {kind_of(max_active)}")
    return BackfillRequest(first, last, param, max_active)


def _date(data: dict[str, Any], name: str) -> dt.date:
    value = data.get(name)
    if value is None:
        raise InvalidRequest(f"'backfill.{name}' is required (a date YYYY-MM-DD)")
    if not isinstance(value, str):
        raise InvalidRequest(f"'backfill.{name}' must be a date YYYY-MM-DD, got {kind_of(value)}")
    try:
        if len(value) != 10:
            raise ValueError(value)
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"'backfill.{name}' must be a date YYYY-MM-DD, got {value[:40]!r}") from None


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
