"""The one strict JSON decoder of every untrusted body, and how decoders name a value's kind in errors."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from baton.errors import InvalidRequest, one_line

ERROR_LIMIT = 200  # characters of a parser's message kept in ours


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


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _refuse_lone_surrogates(raw: bytes | str, value: object) -> None:
    """JSON may escape half of a UTF-16 pair ("\\ud800"): Python decodes it to a str that no UTF-8
    encoder (Spanner, Pub/Sub, the log) accepts. Paired halves decode to one character and pass."""
    encoded = raw.encode("utf-8", errors="surrogatepass") if isinstance(raw, str) else raw
    if not _SURROGATE_ESCAPE.search(encoded):
        return
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise _NotPlainJson("a lone UTF-16 surrogate (\\ud800-\\udfff) is not text") from None


def strict_json(raw: bytes | str, where: str, error: type[InvalidRequest] = InvalidRequest) -> object:
    """Parse untrusted JSON, refusing NaN, infinities, duplicate keys and nesting Python cannot follow.

    `where` names the input in the message ("body", "message data"); `error` is the exception raised.
    """
    try:
        value = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite, object_pairs_hook=_unique_keys)
        _refuse_lone_surrogates(raw, value)
        return value
    except _NotPlainJson as exc:
        raise error(f"{where} is not plain JSON: {exc}") from None
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise error(f"{where} is not JSON: {one_line(str(exc), ERROR_LIMIT)}") from None
    except RecursionError:
        raise error(f"{where} is not JSON Baton reads: nested too deeply") from None
