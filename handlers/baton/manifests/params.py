"""Run params: a JSON or YAML value -> the declared BigQuery parameter type, or why not."""

from __future__ import annotations

import datetime as dt

from baton.domain.specs import ParamValue


def coerce_param(type_: str, raw: object) -> ParamValue:
    """Turn a JSON/YAML value into the declared BigQuery parameter type, or say why not."""
    if type_ == "STRING":
        if not isinstance(raw, str):
            raise ValueError(f"expected a string, got {type(raw).__name__}")
        return raw
    if type_ == "BOOL":
        if not isinstance(raw, bool):
            raise ValueError(f"expected true or false, got {raw!r}")
        return raw
    if type_ == "INT64":
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise ValueError(f"expected an integer, got {raw!r}")
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"expected an integer, got {raw!r}") from None
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"{value} does not fit in INT64")
        return value
    if type_ == "FLOAT64":
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise ValueError(f"expected a number, got {raw!r}")
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"expected a number, got {raw!r}") from None
    if type_ == "DATE":
        if isinstance(raw, dt.date) and not isinstance(raw, dt.datetime):
            return raw.isoformat()
        if not isinstance(raw, str):
            raise ValueError(f"expected a date YYYY-MM-DD, got {raw!r}")
        try:
            return dt.date.fromisoformat(raw).isoformat()
        except ValueError:
            raise ValueError(f"expected a date YYYY-MM-DD, got {raw!r}") from None
    if type_ == "TIMESTAMP":
        if isinstance(raw, dt.datetime):
            raw = raw.isoformat()
        if not isinstance(raw, str):
            raise ValueError(f"expected an ISO 8601 timestamp, got {raw!r}")
        try:
            parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"expected an ISO 8601 timestamp, got {raw!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.isoformat()
    raise ValueError(f"unknown type {type_}")
