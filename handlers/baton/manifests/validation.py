"""The rules across a manifest's fields: every problem found in one pass, one line each, naming the job.

Turns a schema-valid model into domain specs: SQL resolved, defaults applied,
checks compiled to queries, the DAG checked for unknown upstreams and cycles.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from baton.domain.naming import CHECK_NAME_PATTERN, JOB_KEY_PATTERN
from baton.domain.specs import CheckSpec, JobKind, JobSpec, ParamValue
from baton.errors import ManifestInvalid
from baton.manifests import check_sql, job_kinds
from baton.manifests.datasets import DeclaredDatasets, dataset_problems
from baton.manifests.limits import limit_problems
from baton.manifests.model import Manifest
from baton.manifests.params import coerce_param
from baton.manifests.schema import (
    LABEL_KEY_PATTERN,
    LABEL_VALUE_PATTERN,
    MANIFEST_NAME_PATTERN,
    PARAM_NAME_PATTERN,
    TABLE_PATTERN,
    CheckSpecIn,
    JobSpecIn,
    ManifestIn,
)

_CHECK_KINDS = ("sql_returns_no_rows", "sql_is_true", "not_null", "unique", "accepted_values", "row_count_above")
_RAW_CHECK_KINDS = ("sql_returns_no_rows", "sql_is_true")


def describe_pydantic_error(err: Any, data: Mapping[str, Any]) -> str:
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


def check_and_resolve(model: ManifestIn, where: str, base_dir: Path, declared: DeclaredDatasets | None = None) -> Manifest:
    """Every rule across fields; with `declared`, also that each dataset a job touches is declared."""
    problems: list[str] = []
    if not MANIFEST_NAME_PATTERN.match(model.name):
        problems.append(f"name '{model.name}' must be lowercase letters, digits, '_' or '-', starting with a letter")
    if not model.jobs:
        problems.append("jobs: a manifest needs at least one job")
    problems += _check_labels(model.labels, "")
    for name in model.params:
        if not PARAM_NAME_PATTERN.match(name):
            problems.append(f"params: '{name}' is not a valid query parameter name")
        elif name.startswith(check_sql.PARAM_PREFIX):
            problems.append(f"params: '{name}' starts with '{check_sql.PARAM_PREFIX}', which is reserved for Baton")
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
            elif name.startswith(check_sql.PARAM_PREFIX):
                problems.append(f"{at}param '{name}' starts with '{check_sql.PARAM_PREFIX}', which is reserved for Baton")
            if isinstance(value, float) and value != value:
                problems.append(f"{at}param '{name}' is NaN")
        load = copy = extract = None
        if job_kinds.declared_kind(job) in (None, JobKind.QUERY):
            sql = _resolve_sql(job, base_dir, at, problems)
        else:
            sql = ""

            def add(message: str, at: str = at, problems: list[str] = problems) -> None:
                problems.append(at + message)

            load, copy, extract = job_kinds.transfer_specs(job, add)
        compiled = _compile_checks(job, at, problems)
        if sql is not None:
            resolved.append(
                JobSpec(
                    key=job.key,
                    sql=sql,
                    needs=tuple(job.needs),
                    retry=(job.retry or model.retry).to_spec(),
                    destination=job.destination,
                    write_disposition=job.write_disposition or ("WRITE_TRUNCATE" if job.destination else None),
                    labels={**model.labels, **job.labels},
                    params=dict(job.params),
                    checks=compiled,
                    load=load,
                    copy=copy,
                    extract=extract,
                )
            )

    problems += limit_problems(resolved)
    if declared is not None:
        problems += [
            f"job '{key}': {message}" for key, message in dataset_problems(resolved, declared.datasets, declared.project)
        ]
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
    problem = job_kinds.kind_problem(job)
    if problem is not None:
        problems.append(f"{at}{problem}")
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
        if not CHECK_NAME_PATTERN.match(check.name):
            problems.append(f"{where}name must match {CHECK_NAME_PATTERN.pattern} (it becomes a BigQuery label)")
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
        if not check_sql.strip_statement(raw):
            raise ValueError(f"{kind} is empty")
        return (check_sql.returns_no_rows(raw) if kind == "sql_returns_no_rows" else check_sql.is_true(raw)), {}
    if check.not_null is not None:
        return check_sql.not_null(table, check.not_null), {}
    if check.unique is not None:
        columns = [check.unique] if isinstance(check.unique, str) else check.unique
        if not columns or len(set(columns)) != len(columns):
            raise ValueError("unique needs one column or a list of distinct columns")
        return check_sql.unique(table, columns), {}
    if check.accepted_values is not None:
        values = check.accepted_values.values
        if len({type(value) for value in values}) != 1:
            raise ValueError("accepted_values: values must all have one type")
        if any(isinstance(value, float) and value != value for value in values):
            raise ValueError("accepted_values: NaN is not a value")
        return check_sql.accepted_values(table, check.accepted_values.column, values)
    assert check.row_count_above is not None
    return check_sql.row_count_above(table, check.row_count_above), {}


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
