"""Manifest format: a YAML DAG of BigQuery jobs, validated before anything runs.

Every problem is reported at once, one line each, naming the file, the job and
what is wrong, so a data engineer fixes a manifest in one pass.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from baton import checks
from baton.bigquery_errors import RETRYABLE_REASONS
from baton.checks import CheckSpec, Severity
from baton.errors import InvalidParams, ManifestInvalid, ManifestNotFound

JOB_KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
MANIFEST_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE_PATTERN = re.compile(r"^[a-z0-9_-]{0,63}$")
PARAM_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_PROJECT = r"[a-z][a-z0-9-]{4,28}[a-z0-9]"
_DATASET = r"[A-Za-z0-9_]{1,1024}"
_TABLE = r"[A-Za-z0-9_][A-Za-z0-9_-]{0,1023}"
TABLE_PATTERN = re.compile(rf"^(?:(?P<project>{_PROJECT})\.)?(?P<dataset>{_DATASET})\.(?P<table>{_TABLE})$")

ParamType = Literal["STRING", "INT64", "FLOAT64", "BOOL", "DATE", "TIMESTAMP"]
WriteDisposition = Literal["WRITE_TRUNCATE", "WRITE_APPEND", "WRITE_EMPTY"]
ParamValue = str | int | float | bool

# BigQuery error reasons that a second attempt can cure, unless a job says otherwise.
DEFAULT_RETRYABLE_REASONS: tuple[str, ...] = tuple(sorted(RETRYABLE_REASONS))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetrySpec(_Strict):
    """How often a job may run, and which BigQuery error reasons earn another attempt."""

    max_attempts: int = Field(default=3, ge=1, le=10)
    retryable_reasons: tuple[str, ...] = DEFAULT_RETRYABLE_REASONS
    backoff_seconds: float = Field(default=0.0, ge=0, le=3600)
    backoff_multiplier: float = Field(default=2.0, ge=1, le=10)

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before `attempt` (2 is the first retry)."""
        return float(self.backoff_seconds * self.backoff_multiplier ** max(attempt - 2, 0))


class ParamSpec(_Strict):
    type: ParamType = "STRING"
    default: ParamValue | None = None
    description: str = ""


class AcceptedValuesIn(_Strict):
    column: str
    values: list[ParamValue] = Field(min_length=1)


class CheckSpecIn(_Strict):
    """One trust rule: exactly one of the raw SQL assertions or named checks."""

    name: str
    severity: Severity = Severity.ERROR
    description: str = ""
    table: str | None = None  # what named checks read; default: the job's destination
    sql_returns_no_rows: str | None = None
    sql_is_true: str | None = None
    not_null: str | None = None
    unique: str | list[str] | None = None
    accepted_values: AcceptedValuesIn | None = None
    row_count_above: int | None = Field(default=None, ge=0, strict=True)


_CHECK_KINDS = ("sql_returns_no_rows", "sql_is_true", "not_null", "unique", "accepted_values", "row_count_above")
_RAW_CHECK_KINDS = ("sql_returns_no_rows", "sql_is_true")


class JobSpecIn(_Strict):
    key: str
    sql: str | None = None
    sql_file: str | None = None
    destination: str | None = None
    write_disposition: WriteDisposition | None = None
    needs: tuple[str, ...] = ()
    retry: RetrySpec | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    params: dict[str, ParamValue] = Field(default_factory=dict)
    checks: list[CheckSpecIn] = Field(default_factory=list)
    description: str = ""


class ManifestIn(_Strict):
    name: str
    description: str = ""
    schedule: str | None = None
    time_zone: str = "Etc/UTC"
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    retry: RetrySpec = RetrySpec()
    labels: dict[str, str] = Field(default_factory=dict)
    jobs: list[JobSpecIn]


@dataclass(frozen=True)
class JobSpec:
    """A job as it will run: SQL resolved, defaults applied. Snapshotted into each run."""

    key: str
    sql: str
    needs: tuple[str, ...]
    retry: RetrySpec
    destination: str | None = None
    write_disposition: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, ParamValue] = field(default_factory=dict)
    checks: tuple[CheckSpec, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key,
            "sql": self.sql,
            "needs": list(self.needs),
            "retry": self.retry.model_dump(mode="json"),
            "destination": self.destination,
            "write_disposition": self.write_disposition,
            "labels": dict(self.labels),
            "params": dict(self.params),
        }
        if self.checks:  # absent when empty, so manifests without checks keep their version hash
            out["checks"] = [check.to_json() for check in self.checks]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobSpec:
        return cls(
            key=data["key"],
            sql=data["sql"],
            needs=tuple(data.get("needs", ())),
            retry=RetrySpec.model_validate(data.get("retry", {})),
            destination=data.get("destination"),
            write_disposition=data.get("write_disposition"),
            labels=dict(data.get("labels", {})),
            params=dict(data.get("params", {})),
            checks=tuple(CheckSpec.from_json(check) for check in data.get("checks", ())),
        )


@dataclass(frozen=True)
class Manifest:
    name: str
    source: str
    jobs: tuple[JobSpec, ...]
    params: Mapping[str, ParamSpec]
    schedule: str | None = None
    time_zone: str = "Etc/UTC"
    description: str = ""

    @property
    def version(self) -> str:
        """Content hash of everything that affects a run: the snapshot's identity."""
        body = {
            "name": self.name,
            "params": {k: v.model_dump(mode="json") for k, v in sorted(self.params.items())},
            "jobs": [job.to_json() for job in self.jobs],
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]

    def job(self, key: str) -> JobSpec:
        for job in self.jobs:
            if job.key == key:
                return job
        raise KeyError(key)

    def roots(self) -> list[str]:
        return [job.key for job in self.jobs if not job.needs]

    def dependents(self) -> dict[str, list[str]]:
        """Reverse edges: for each job, the jobs that need it, in manifest order."""
        result: dict[str, list[str]] = {job.key: [] for job in self.jobs}
        for job in self.jobs:
            for upstream in job.needs:
                result[upstream].append(job.key)
        return result

    def bind_params(self, given: Mapping[str, Any], today: dt.date) -> dict[str, BoundParam]:
        """Check the caller's params against the declarations and type them."""
        problems: list[str] = []
        unknown = sorted(set(given) - set(self.params))
        problems += [f"unknown param '{name}' (declared: {', '.join(sorted(self.params)) or 'none'})" for name in unknown]
        bound: dict[str, BoundParam] = {}
        for name, spec in self.params.items():
            raw = given.get(name, spec.default)
            if raw is None and name == "run_date" and spec.type == "DATE":
                raw = today.isoformat()
            if raw is None:
                problems.append(f"param '{name}' is required ({spec.type})")
                continue
            try:
                bound[name] = BoundParam(spec.type, coerce_param(spec.type, raw))
            except ValueError as exc:
                problems.append(f"param '{name}': {exc}")
        if problems:
            raise InvalidParams(self.name, problems)
        return bound


@dataclass(frozen=True)
class BoundParam:
    type: str
    value: ParamValue

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "value": self.value}


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


# libyaml's parser where PyYAML was built with it: several times faster on large manifests.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """SafeLoader that refuses duplicate mapping keys instead of keeping the last one."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_manifest(path: Path, display_name: str | None = None) -> Manifest:
    """Read, validate and resolve one manifest file; raise ManifestInvalid listing every problem."""
    where = display_name or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestNotFound(where) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestInvalid(where, [f"cannot read file: {exc}"]) from exc
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ManifestInvalid(where, [f"not valid YAML: {' '.join(str(exc).split())}"]) from exc
    return parse_manifest(data, where, base_dir=path.parent)


def parse_manifest(data: object, where: str, base_dir: Path) -> Manifest:
    if not isinstance(data, dict):
        raise ManifestInvalid(where, ["the file must hold a mapping with 'name' and 'jobs'"])
    try:
        model = ManifestIn.model_validate(data)
    except ValidationError as exc:
        raise ManifestInvalid(where, [_describe_pydantic_error(err, data) for err in exc.errors()]) from exc
    return _check_and_resolve(model, where, base_dir)


def _describe_pydantic_error(err: Any, data: Mapping[str, Any]) -> str:
    loc = list(err["loc"])
    prefix = ""
    if len(loc) >= 2 and loc[0] == "jobs" and isinstance(loc[1], int):
        jobs = data.get("jobs")
        key = None
        if isinstance(jobs, list) and loc[1] < len(jobs) and isinstance(jobs[loc[1]], dict):
            key = jobs[loc[1]].get("key")
        prefix = f"job '{key}': " if isinstance(key, str) else f"job #{loc[1] + 1}: "
        loc = loc[2:]
    path = ".".join(str(part) for part in loc)
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown field"
    elif err["type"] == "missing":
        message = "required field is missing"
    return f"{prefix}{path}: {message}" if path else f"{prefix}{message}"


def _check_labels(labels: Mapping[str, str], owner: str) -> list[str]:
    problems = []
    for key, value in labels.items():
        if not LABEL_KEY_PATTERN.match(key):
            problems.append(f"{owner}label key '{key}' must be lowercase letters, digits, '_' or '-', at most 63")
        elif key.startswith("baton_"):
            problems.append(f"{owner}label key '{key}' is reserved for Baton")
        if not LABEL_VALUE_PATTERN.match(value):
            problems.append(f"{owner}label '{key}' value '{value}' must be lowercase letters, digits, '_' or '-'")
    return problems


def _check_and_resolve(model: ManifestIn, where: str, base_dir: Path) -> Manifest:
    problems: list[str] = []
    if not MANIFEST_NAME_PATTERN.match(model.name):
        problems.append(f"name '{model.name}' must be lowercase letters, digits, '_' or '-', starting with a letter")
    if not model.jobs:
        problems.append("jobs: a manifest needs at least one job")
    problems += _check_labels(model.labels, "")
    for name in model.params:
        if not PARAM_NAME_PATTERN.match(name):
            problems.append(f"params: '{name}' is not a valid query parameter name")
        elif name.startswith(checks.PARAM_PREFIX):
            problems.append(f"params: '{name}' starts with '{checks.PARAM_PREFIX}', which is reserved for Baton")
    for name, spec in model.params.items():
        if spec.default is not None:
            try:
                coerce_param(spec.type, spec.default)
            except ValueError as exc:
                problems.append(f"params: '{name}' default: {exc}")

    keys = [job.key for job in model.jobs]
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            problems.append(f"job '{key}': duplicate key")
        seen.add(key)

    resolved: list[JobSpec] = []
    for job in model.jobs:
        at = f"job '{job.key}': "
        if not JOB_KEY_PATTERN.match(job.key):
            problems.append(f"{at}key must match {JOB_KEY_PATTERN.pattern} (it becomes a BigQuery label)")
        for upstream in job.needs:
            if upstream not in seen:
                problems.append(f"{at}needs unknown job '{upstream}'")
            elif upstream == job.key:
                problems.append(f"{at}needs itself")
        if len(set(job.needs)) != len(job.needs):
            problems.append(f"{at}lists the same job twice in needs")
        if job.destination is not None and not TABLE_PATTERN.match(job.destination):
            problems.append(f"{at}destination '{job.destination}' is not a table id like dataset.table or project.dataset.table")
        if job.write_disposition is not None and job.destination is None:
            problems.append(f"{at}write_disposition needs a destination")
        problems += _check_labels(job.labels, at)
        for name, value in job.params.items():
            if not PARAM_NAME_PATTERN.match(name):
                problems.append(f"{at}param '{name}' is not a valid query parameter name")
            elif name in model.params:
                problems.append(f"{at}param '{name}' shadows the manifest param of the same name")
            elif name.startswith(checks.PARAM_PREFIX):
                problems.append(f"{at}param '{name}' starts with '{checks.PARAM_PREFIX}', which is reserved for Baton")
            if isinstance(value, float) and value != value:
                problems.append(f"{at}param '{name}' is NaN")
        sql = _resolve_sql(job, base_dir, at, problems)
        compiled = _compile_checks(job, at, problems)
        if sql is not None:
            resolved.append(
                JobSpec(
                    key=job.key,
                    sql=sql,
                    needs=tuple(job.needs),
                    retry=job.retry or model.retry,
                    destination=job.destination,
                    write_disposition=job.write_disposition or ("WRITE_TRUNCATE" if job.destination else None),
                    labels={**model.labels, **job.labels},
                    params=dict(job.params),
                    checks=compiled,
                )
            )

    if not problems:
        problems += [f"job '{key}': part of a cycle {' -> '.join(cycle)}" for key, cycle in _find_cycles(resolved)]
    if problems:
        raise ManifestInvalid(where, problems)
    return Manifest(
        name=model.name,
        source=where,
        jobs=tuple(resolved),
        params=dict(model.params),
        schedule=model.schedule,
        time_zone=model.time_zone,
        description=model.description,
    )


def _resolve_sql(job: JobSpecIn, base_dir: Path, at: str, problems: list[str]) -> str | None:
    if (job.sql is None) == (job.sql_file is None):
        problems.append(f"{at}give exactly one of 'sql' or 'sql_file'")
        return None
    if job.sql is not None:
        sql = job.sql
    else:
        assert job.sql_file is not None
        path = (base_dir / job.sql_file).resolve()
        if not path.is_relative_to(base_dir.resolve()):
            problems.append(f"{at}sql_file '{job.sql_file}' must stay inside the manifest's folder")
            return None
        try:
            sql = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            problems.append(f"{at}sql_file '{job.sql_file}' not found (relative to {base_dir.name}/)")
            return None
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{at}sql_file '{job.sql_file}' cannot be read: {exc}")
            return None
    if not sql.strip():
        problems.append(f"{at}SQL is empty")
        return None
    return sql


def _compile_checks(job: JobSpecIn, at: str, problems: list[str]) -> tuple[CheckSpec, ...]:
    """Validate a job's checks and compile each to its query; problems are appended, one line each."""
    compiled: list[CheckSpec] = []
    seen: set[str] = set()
    for check in job.checks:
        where = f"{at}check '{check.name}': "
        if not checks.CHECK_NAME_PATTERN.match(check.name):
            problems.append(f"{where}name must match {checks.CHECK_NAME_PATTERN.pattern} (it becomes a BigQuery label)")
        if check.name in seen:
            problems.append(f"{where}duplicate check name")
        seen.add(check.name)
        kinds = [kind for kind in _CHECK_KINDS if getattr(check, kind) is not None]
        if len(kinds) != 1:
            found = ", ".join(kinds) or "none"
            problems.append(f"{where}give exactly one of {', '.join(_CHECK_KINDS)} (found: {found})")
            continue
        kind = kinds[0]
        table = check.table or job.destination
        if kind in _RAW_CHECK_KINDS:
            if check.table is not None:
                problems.append(f"{where}'table' applies to named checks; raw SQL names its own tables")
                continue
        elif table is None:
            problems.append(f"{where}{kind} needs the job's destination or an explicit 'table'")
            continue
        elif not TABLE_PATTERN.match(table):
            problems.append(f"{where}table '{table}' is not a table id like dataset.table or project.dataset.table")
            continue
        try:
            sql, params = _check_sql(check, kind, table or "")
        except ValueError as exc:
            problems.append(f"{where}{exc}")
            continue
        compiled.append(CheckSpec(check.name, check.severity, sql, kind, params, check.description))
    return tuple(compiled)


def _check_sql(check: CheckSpecIn, kind: str, table: str) -> tuple[str, dict[str, ParamValue]]:
    if check.sql_returns_no_rows is not None or check.sql_is_true is not None:
        raw = check.sql_returns_no_rows if check.sql_returns_no_rows is not None else check.sql_is_true
        assert raw is not None
        if not checks.strip_statement(raw):
            raise ValueError(f"{kind} is empty")
        return (checks.returns_no_rows(raw) if kind == "sql_returns_no_rows" else checks.is_true(raw)), {}
    if check.not_null is not None:
        return checks.not_null(table, check.not_null), {}
    if check.unique is not None:
        columns = [check.unique] if isinstance(check.unique, str) else check.unique
        if not columns or len(set(columns)) != len(columns):
            raise ValueError("unique needs one column or a list of distinct columns")
        return checks.unique(table, columns), {}
    if check.accepted_values is not None:
        values = check.accepted_values.values
        if len({type(value) for value in values}) != 1:
            raise ValueError("accepted_values: values must all have one type")
        if any(isinstance(value, float) and value != value for value in values):
            raise ValueError("accepted_values: NaN is not a value")
        return checks.accepted_values(table, check.accepted_values.column, values)
    assert check.row_count_above is not None
    return checks.row_count_above(table, check.row_count_above), {}


def _find_cycles(jobs: list[JobSpec]) -> list[tuple[str, list[str]]]:
    """Each job on a cycle with one cycle through it (iterative DFS, so deep chains don't recurse)."""
    needs = {job.key: job.needs for job in jobs}
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    found: list[tuple[str, list[str]]] = []
    reported: set[str] = set()
    for start in needs:
        if start in state:
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = [start]
        state[start] = 1
        while stack:
            node, index = stack[-1]
            if index < len(needs[node]):
                stack[-1] = (node, index + 1)
                nxt = needs[node][index]
                if state.get(nxt) == 1:
                    cycle = [*path[path.index(nxt) :], nxt]
                    for member in cycle[:-1]:
                        if member not in reported:
                            reported.add(member)
                            found.append((member, cycle))
                elif nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, 0))
                    path.append(nxt)
            else:
                state[node] = 2
                stack.pop()
                path.pop()
    return found


class ManifestRepository:
    """Manifests by name from one folder: `<name>.yaml` (or .yml)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.iterdir() if p.suffix in (".yaml", ".yml"))

    def load(self, name: str) -> Manifest:
        if not MANIFEST_NAME_PATTERN.match(name):
            raise ManifestNotFound(name)
        for suffix in (".yaml", ".yml"):
            path = self.directory / f"{name}{suffix}"
            if path.is_file():
                manifest = load_manifest(path, display_name=f"{self.directory.name}/{path.name}")
                if manifest.name != name:
                    problem = f"name '{manifest.name}' differs from the file name '{name}'"
                    raise ManifestInvalid(f"{self.directory.name}/{path.name}", [problem])
                return manifest
        raise ManifestNotFound(name)
