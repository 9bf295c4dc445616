"""A manifest's structure, checked by its pydantic schema, keeping whatever did parse.

The header and each job are validated on their own. A field that fails is reported and
left out (a bad check drops that check, a bad job field that field, with its default),
so the rules across fields in validation.py still run over the rest: a data engineer
sees every problem of a manifest in one pass, not the schema's first and the rest later.
Each line names the job by its key, the check by its name, and what would be valid.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from baton.errors import Problem
from baton.manifests.schema import (
    CHECK_KINDS,
    CheckSpecIn,
    JobSpecIn,
    ManifestHeaderIn,
)


@dataclass
class Parsed:
    """What parsed, and what did not."""

    header: ManifestHeaderIn | None
    jobs: list[JobSpecIn]
    # Every job key the file spells, also of jobs that did not parse: `needs` on them is not a second problem.
    keys: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)


def parse_structure(data: Mapping[str, Any]) -> Parsed:
    problems: list[Problem] = []
    header = _validate(ManifestHeaderIn, {k: v for k, v in data.items() if k != "jobs"}, problems, None)
    parsed = Parsed(header, [], problems=problems)
    raw_jobs = data.get("jobs")
    if "jobs" not in data:
        problems.append(Problem("jobs: required field is missing (a list of jobs, each with a key)"))
        return parsed
    if not isinstance(raw_jobs, list):
        problems.append(Problem(f"jobs: must be a list of jobs, each with a key; got {type(raw_jobs).__name__}"))
        return parsed
    if not raw_jobs:
        problems.append(Problem("jobs: a manifest needs at least one job"))
    for index, raw in enumerate(raw_jobs):
        key = raw.get("key") if isinstance(raw, dict) else None
        if isinstance(key, str):
            parsed.keys.add(key)
        if not isinstance(raw, dict):
            problems.append(Problem(f"job #{index + 1}: must be a mapping with a key and its SQL; got {type(raw).__name__}"))
            continue
        named = isinstance(key, str)
        job = _validate(JobSpecIn, raw, problems, key if named else None, "" if named else f"job #{index + 1} (no key): ")
        if job is not None:
            parsed.jobs.append(job)
    return parsed


M = TypeVar("M", bound=BaseModel)


def _validate(model: type[M], data: dict[str, Any], problems: list[Problem], job: str | None, unnamed: str = "") -> M | None:
    """The model, or after reporting its errors, the model without the fields that failed; None if even that fails."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
    problems += _describe_all(model, errors, data, job, unnamed)
    try:
        return model.model_validate(_pruned(data, [err["loc"] for err in errors]))
    except ValidationError:
        return None  # a required field is missing or wrong: reported above


def _pruned(data: dict[str, Any], locs: Sequence[tuple[int | str, ...]]) -> dict[str, Any]:
    """`data` without what failed: one element of a list or mapping field (a check, a param), else the field."""
    dropped_fields: set[str] = set()
    dropped_items: dict[str, set[int | str]] = {}
    for loc in locs:
        if not loc or not isinstance(loc[0], str):
            continue
        container = data.get(loc[0])
        if len(loc) >= 2 and isinstance(container, list | dict):
            dropped_items.setdefault(loc[0], set()).add(loc[1])
        else:
            dropped_fields.add(loc[0])
    pruned: dict[str, Any] = {}
    for name, value in data.items():
        if name in dropped_fields:
            continue
        drop = dropped_items.get(name, set())
        if isinstance(value, list):
            value = [item for index, item in enumerate(value) if index not in drop]
        elif isinstance(value, dict):
            value = {key: item for key, item in value.items() if key not in drop}
        pruned[name] = value
    return pruned


# --- one line per error --------------------------------------------------------------------------------------


def _describe_all(
    model: type[BaseModel], errors: Sequence[Any], data: Mapping[str, Any], job: str | None, unnamed: str
) -> list[Problem]:
    """Pydantic's errors as lines; the alternatives of one union field (`str` or `list[str]`) become one line.

    `unnamed` starts the lines of a job without a key (`job #3 (no key): `), as a check without a name gets its own.
    """
    lines: dict[tuple[str | None, str], Problem] = {}
    union_tags: dict[tuple[str | None, str], list[str]] = {}
    for err in errors:
        check, path, tag, owner = _locate(model, err["loc"], data)
        place = (check, path)
        prefix = unnamed
        if check is not None and check.startswith("#"):
            prefix, check = f"{unnamed}check {check} (no name): ", None
        if tag is not None:
            union_tags.setdefault(place, []).append(tag)
            expected = " or ".join(union_tags[place])
            lines[place] = Problem(f"{prefix}{path}: expected {expected}, got {err.get('input')!r}", job, check)
        elif place not in lines or err["type"] == "missing":
            lines[place] = Problem(prefix + _message(err, path, owner), job, check)
    return list(lines.values())


def _located_name(raw: object, index: int) -> str:
    """A check's name, or `#N` when it has none: check names are labels, so they never start with '#'."""
    name = raw.get("name") if isinstance(raw, dict) else None
    return name if isinstance(name, str) else f"#{index + 1}"


def _locate(
    model: type[BaseModel], loc: tuple[int | str, ...], data: Mapping[str, Any]
) -> tuple[str | None, str, str | None, Any]:
    """(check name, dotted path inside it, union alternative that failed, the model that owns the last field)."""
    check: str | None = None
    parts: list[str] = []
    annotation: Any = model
    owner: Any = model
    tag: str | None = None
    position = 0
    if model is JobSpecIn and len(loc) >= 2 and loc[0] == "checks" and isinstance(loc[1], int):
        checks = data.get("checks")
        raw = checks[loc[1]] if isinstance(checks, list) and loc[1] < len(checks) else None
        check = _located_name(raw, loc[1])
        annotation = owner = CheckSpecIn
        position = 2
    for part in loc[position:]:
        annotation = _without_none(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            owner = annotation
            parts.append(str(part))
            field_info = annotation.model_fields.get(str(part))
            annotation = field_info.annotation if field_info is not None else None
            continue
        origin = get_origin(annotation)
        if origin in (Union, types.UnionType):
            tag = str(part)
            break
        if origin in (list, tuple, dict) and get_args(annotation):
            parts.append(str(part))
            annotation = get_args(annotation)[-1 if origin is dict else 0]
            continue
        parts.append(str(part))
    return check, ".".join(parts), tag, owner


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _valid_fields(owner: Any) -> str:
    if owner is CheckSpecIn:
        others = [name for name in CheckSpecIn.model_fields if name not in CHECK_KINDS]
        return f"check kinds: {', '.join(CHECK_KINDS)}; other check fields: {', '.join(others)}"
    if isinstance(owner, type) and issubclass(owner, BaseModel):
        what = {JobSpecIn: "job", ManifestHeaderIn: "manifest"}.get(owner, owner.__name__.removesuffix("In").lower())
        names = [*owner.model_fields, *(["jobs"] if owner is ManifestHeaderIn else [])]
        return f"{what} fields: {', '.join(names)}"
    return ""


def _message(err: Any, path: str, owner: Any) -> str:
    kind = err["type"]
    prefix = f"{path}: " if path else ""
    if kind == "extra_forbidden":
        names = list(owner.model_fields) if isinstance(owner, type) and issubclass(owner, BaseModel) else []
        close = difflib.get_close_matches(path.rsplit(".", 1)[-1], names, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f"{prefix}unknown field ({hint}{_valid_fields(owner)})"
    if kind == "missing":
        return f"{prefix}required field is missing"
    if kind in ("literal_error", "enum"):
        expected = err.get("ctx", {}).get("expected", "")
        return f"{prefix}{err.get('input')!r} is not valid; one of {expected}"
    return f"{prefix}{err['msg']}"
