"""Small helpers for describing untrusted JSON in one-line error messages, shared by every decoder."""

from __future__ import annotations

from collections.abc import Mapping


def kind_of(value: object) -> str:
    """The JSON kind of a decoded value, for messages like "must be an object, got an array"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def one_line(exc: Exception, limit: int = 200) -> str:
    """An exception's text on one line, cut to `limit` characters, so a log entry stays one line."""
    return " ".join(str(exc).split())[:limit]


def reject_constant(name: str) -> object:
    """`json.loads(parse_constant=...)`: NaN and Infinity are Python's extension, not JSON."""
    raise ValueError(f"{name} is not JSON")
