"""The offending rows a failed check keeps: few and small, since they live in the check's Spanner row.

Rows come from the check's own result (its query returns the offending rows). They are
evidence for an operator, not data: values become JSON scalars, long text is cut, and
rows are kept in order while they fit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

MAX_SAMPLE_ROWS = 10
MAX_SAMPLE_BYTES = 8 * 1024  # of the rows' JSON
MAX_VALUE_CHARS = 256
_SCALARS = (bool, int, float)


def bounded_sample(rows: Iterable[Mapping[str, Any]]) -> tuple[dict[str, Any], ...]:
    """At most MAX_SAMPLE_ROWS rows whose JSON fits MAX_SAMPLE_BYTES, values made JSON scalars."""
    kept: list[dict[str, Any]] = []
    size = 2  # the list's brackets
    for row in rows:
        if len(kept) == MAX_SAMPLE_ROWS:
            break
        clean = {str(name): _scalar(value) for name, value in row.items()}
        cost = len(json.dumps(clean, sort_keys=True)) + (1 if kept else 0)
        if size + cost > MAX_SAMPLE_BYTES:
            break
        kept.append(clean)
        size += cost
    return tuple(kept)


def _scalar(value: object) -> Any:
    if value is None or isinstance(value, _SCALARS):
        return value
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"
