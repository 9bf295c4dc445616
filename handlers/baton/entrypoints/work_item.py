"""A continuation message (`baton_work` attribute set) -> the `Continuation` it carries, strictly.

The work topic is Baton's own, so a malformed item is a bug or a stray publisher: it is
dropped to the dead-letter topic with the reason, like any undecodable message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from baton.domain.naming import JOB_KEY_PATTERN, RUN_ID_PATTERN
from baton.domain.records import Continuation
from baton.entrypoints.json_body import kind_of, strict_json
from baton.entrypoints.pubsub_message import MalformedMessage, PubSubMessage

KINDS = ("release", "skip", "submit")
_FIELDS = {
    "release": {"kind", "run_id", "job_key", "attempt", "after"},
    "skip": {"kind", "run_id", "frontier", "cause"},
    "submit": {"kind", "run_id", "job_keys"},
}
MAX_KEYS = 20_000  # a frontier or a submit batch is far smaller; anything near this is not Baton's


def decode_work_item(message: PubSubMessage) -> Continuation:
    data = strict_json(message.data, "work item", MalformedMessage)
    if not isinstance(data, Mapping):
        raise MalformedMessage(f"work item must be a JSON object, got {kind_of(data)}")
    kind = data.get("kind")
    if kind not in KINDS:
        raise MalformedMessage(f"work item kind must be one of {', '.join(KINDS)}, got {str(kind)[:40]!r}")
    unknown = sorted(set(data) - _FIELDS[kind])
    if unknown:
        raise MalformedMessage(f"work item ({kind}) has unknown field(s): {', '.join(unknown)[:200]}")
    run_id = _key(data.get("run_id"), "run_id", RUN_ID_PATTERN)
    if kind == "release":
        attempt = data.get("attempt")
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
            raise MalformedMessage(f"work item attempt must be a positive integer, got {kind_of(attempt)}")
        after = data.get("after")
        return Continuation(
            kind,
            run_id,
            job_key=_key(data.get("job_key"), "job_key", JOB_KEY_PATTERN),
            attempt=attempt,
            after=None if after is None else _key(after, "after", JOB_KEY_PATTERN),
        )
    if kind == "skip":
        frontier = _list(data.get("frontier"), "frontier")
        pairs: list[tuple[str, str | None]] = []
        for index, pair in enumerate(frontier):
            if not isinstance(pair, list) or len(pair) != 2:
                raise MalformedMessage(f"work item frontier[{index}] must be [job key, after or null]")
            after = None if pair[1] is None else _key(pair[1], f"frontier[{index}][1]", JOB_KEY_PATTERN)
            pairs.append((_key(pair[0], f"frontier[{index}][0]", JOB_KEY_PATTERN), after))
        cause = _key(data.get("cause"), "cause", JOB_KEY_PATTERN)
        return Continuation(kind, run_id, frontier=tuple(pairs), cause=cause)
    keys = [_key(key, "job_keys[]", JOB_KEY_PATTERN) for key in _list(data.get("job_keys"), "job_keys")]
    return Continuation(kind, run_id, job_keys=tuple(keys))


def _key(value: object, name: str, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        shown = f"{value[:70]!r}" if isinstance(value, str) else kind_of(value)
        raise MalformedMessage(f"work item {name} must match {pattern.pattern}, got {shown}")
    return value


def _list(value: object, name: str) -> list[object]:
    if not isinstance(value, list) or not value or len(value) > MAX_KEYS:
        raise MalformedMessage(f"work item {name} must be a non-empty array of at most {MAX_KEYS}, got {kind_of(value)}")
    return value
