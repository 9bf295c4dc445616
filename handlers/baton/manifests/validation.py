"""The rules across a manifest's fields: every problem found in one pass, one line each, naming the job.

Runs over whatever parsed (structure.py), so a schema error does not hide these.
Turns the jobs into domain specs: SQL resolved, defaults applied, checks compiled to
queries, the DAG checked for unknown upstreams and cycles, the schedule as cron.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from baton.domain.naming import CHECK_NAME_PATTERN, JOB_KEY_PATTERN
from baton.domain.specs import CheckSpec, JobKind, JobSpec, ParamValue
from baton.errors import ManifestInvalid, Problem
from baton.manifests import check_sql, job_kinds
from baton.manifests.datasets import DeclaredDatasets, dataset_problems
from baton.manifests.limits import limit_problems
from baton.manifests.model import Manifest
from baton.manifests.params import coerce_param
from baton.manifests.schedule import schedule_problem, time_zone_problem
from baton.manifests.schema import (
    CHECK_KINDS,
    LABEL_KEY_PATTERN,
    LABEL_VALUE_PATTERN,
    MANIFEST_NAME_PATTERN,
    PARAM_NAME_PATTERN,
    RAW_CHECK_KINDS,
    TABLE_PATTERN,
    CheckSpecIn,
    JobSpecIn,
    ManifestHeaderIn,
    RetryIn,
)
from baton.manifests.structure import Parsed

_LISTED = 12  # an unknown job's message lists the manifest's jobs when there are at most this many


def _check_labels(labels: Mapping[str, str], job: str | None) -> list[Problem]:
    problems = []
    for key, value in labels.items():
        if not LABEL_KEY_PATTERN.fullmatch(key):
            problems.append(Problem(f"label key '{key}' must be lowercase letters, digits, '_' or '-', at most 63", job))
        elif key.startswith("baton_"):
            problems.append(Problem(f"label key '{key}' is reserved for Baton", job))
        if not LABEL_VALUE_PATTERN.fullmatch(value):
            problems.append(Problem(f"label '{key}' value '{value}' must be lowercase letters, digits, '_' or '-'", job))
    return problems


def _check_header(model: ManifestHeaderIn) -> list[Problem]:
    problems: list[Problem] = []
    if not MANIFEST_NAME_PATTERN.fullmatch(model.name):
        problems.append(Problem(f"name '{model.name}' must be lowercase letters, digits, '_' or '-', starting with a letter"))
    if model.schedule is not None:
        problem = schedule_problem(model.schedule)
        if problem:
            problems.append(Problem(problem))
    problem = time_zone_problem(model.time_zone)
    if problem:
        problems.append(Problem(problem))
    problems += _check_labels(model.labels, None)
    for name, spec in model.params.items():
        if not PARAM_NAME_PATTERN.fullmatch(name):
            problems.append(Problem(f"params: '{name}' is not a valid query parameter name"))
        elif name.startswith(check_sql.PARAM_PREFIX):
            problems.append(Problem(f"params: '{name}' starts with '{check_sql.PARAM_PREFIX}', which is reserved for Baton"))
        if spec.default is not None:
            try:
                coerce_param(spec.type, spec.default)
            except ValueError as exc:
                problems.append(Problem(f"params: '{name}' default: {exc}"))
    return problems


def check_and_resolve(
    parsed: Parsed,
    where: str,
    base_dir: Path,
    declared: DeclaredDatasets | None = None,
    pools: Collection[str] | None = None,
) -> Manifest:
    """The rules across fields, over whatever parsed; raise ManifestInvalid with every problem, structural ones first.

    With `declared`, also that each dataset a job touches is declared for the environment; with `pools`, that
    each pool named is one of the environment's.
    """
    problems = list(parsed.problems)
    header = parsed.header
    manifest_params = header.params if header is not None else {}
    if header is not None:
        problems += _check_header(header)
        if header.pool is not None:
            problems += _pool_problems(header.pool, pools, None)

    seen: set[str] = set()
    for job in parsed.jobs:
        if job.key in seen:
            problems.append(Problem("duplicate key", job.key))
        seen.add(job.key)

    resolved: list[JobSpec] = []
    for job in parsed.jobs:
        problems += _check_job(job, parsed.keys, manifest_params)
        if job.pool is not None:
            problems += _pool_problems(job.pool, pools, job.key)
        load = copy = extract = None
        if job_kinds.declared_kind(job) in (None, JobKind.QUERY):
            sql = _resolve_sql(job, base_dir, problems)
        else:
            sql = ""

            def add(message: str, key: str = job.key, problems: list[Problem] = problems) -> None:
                problems.append(Problem(message, key))

            load, copy, extract = job_kinds.transfer_specs(job, add)
        compiled = _compile_checks(job, problems)
        if sql is not None:
            resolved.append(
                JobSpec(
                    key=job.key,
                    sql=sql,
                    needs=tuple(job.needs),
                    retry=(job.retry or (header.retry if header is not None else RetryIn())).to_spec(),
                    destination=job.destination,
                    write_disposition=job.write_disposition or ("WRITE_TRUNCATE" if job.destination else None),
                    labels={**(header.labels if header is not None else {}), **job.labels},
                    params=dict(job.params),
                    checks=compiled,
                    timeout_seconds=_timeout(
                        job.timeout if job.timeout is not None else header.timeout if header else None, job.key, problems
                    ),
                    load=load,
                    copy=copy,
                    extract=extract,
                    pool=job.pool if job.pool is not None else header.pool if header else None,
                    priority=job.priority if job.priority is not None else header.priority if header else 0,
                )
            )

    problems += limit_problems(resolved)
    if declared is not None:
        problems += [Problem(message, key) for key, message in dataset_problems(resolved, declared.datasets, declared.project)]
    cycles = _find_cycles(parsed.jobs)
    problems += [Problem(f"part of the cycle {' -> '.join(cycle)}", cycle[0]) for cycle in cycles]
    problems += _checks_read_upstreams(parsed.jobs, resolved)
    run_timeout = _timeout(header.run_timeout, None, problems, "run_timeout") if header is not None else None
    if problems or header is None:
        raise ManifestInvalid(where, problems)
    return Manifest(
        name=header.name,
        source=where,
        jobs=tuple(resolved),
        params=dict(header.params),
        schedule=header.schedule,
        time_zone=header.time_zone,
        description=header.description,
        concurrency=header.concurrency,
        when_paused=header.when_paused,
        run_timeout_seconds=run_timeout,
    )


def _check_job(job: JobSpecIn, keys: set[str], manifest_params: Mapping[str, object]) -> list[Problem]:
    problems: list[Problem] = []

    def add(message: str) -> None:
        problems.append(Problem(message, job.key))

    if not JOB_KEY_PATTERN.fullmatch(job.key):
        add(f"key must match {JOB_KEY_PATTERN.pattern} (it becomes a BigQuery label)")
    for upstream in job.needs:
        if upstream not in keys:
            add(f"needs unknown job '{upstream}'{_suggestion(upstream, sorted(keys), 'jobs')}")
        elif upstream == job.key:
            add("needs itself")
    if len(set(job.needs)) != len(job.needs):
        add("lists the same job twice in needs")
    if job.destination is not None and not TABLE_PATTERN.fullmatch(job.destination):
        add(f"destination '{job.destination}' is not a table id like dataset.table or project.dataset.table")
    if job.write_disposition is not None and job.destination is None:
        add("write_disposition needs a destination")
    problems += _check_labels(job.labels, job.key)
    for name, value in job.params.items():
        if not PARAM_NAME_PATTERN.fullmatch(name):
            add(f"param '{name}' is not a valid query parameter name")
        elif name in manifest_params:
            add(f"param '{name}' shadows the manifest param of the same name")
        elif name.startswith(check_sql.PARAM_PREFIX):
            add(f"param '{name}' starts with '{check_sql.PARAM_PREFIX}', which is reserved for Baton")
        if isinstance(value, float) and value != value:
            add(f"param '{name}' is NaN")
    return problems


_DURATION = re.compile(r"^(?P<amount>[1-9][0-9]{0,6})(?P<unit>[smh])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}
MAX_TIMEOUT_S = 7 * 24 * 3600  # a week: longer than any BigQuery job may run (6 hours), room for queueing


def _pool_problems(pool: str, pools: Collection[str] | None, key: str | None) -> list[Problem]:
    """A pool the environment does not configure would limit nothing: refused, naming it and the ones there are."""
    if pools is None or pool in pools:
        return []
    known = ", ".join(sorted(pools)) or "none"
    return [Problem(f"pool '{pool}' is not one of the environment's pools ({known}); add it to its pools or name another", key)]


def _first(*values: int | str | None) -> int | str | None:
    return next((value for value in values if value is not None), None)


def _timeout(value: int | str | None, key: str | None, problems: list[Problem], field: str = "timeout") -> int | None:
    """`timeout:` (or `run_timeout:`) as seconds: an integer, or a duration like 90s, 30m, 2h."""
    if value is None:
        return None
    match = _DURATION.match(value) if isinstance(value, str) else None
    seconds = value if isinstance(value, int) and not isinstance(value, bool) else None
    if match:
        seconds = int(match["amount"]) * _UNIT_SECONDS[match["unit"]]
    if seconds is None or not 1 <= seconds <= MAX_TIMEOUT_S:
        problems.append(Problem(f"{field} '{value}' must be seconds or a duration like 90s, 30m, 2h, at most 168h", key))
        return None
    return seconds


def _suggestion(name: str, valid: Sequence[str], what: str) -> str:
    """` (did you mean 'x'?)` for a near miss, else the valid names when they are few enough to read."""
    close = difflib.get_close_matches(name, valid, n=3)
    if close:
        return f" (did you mean {' or '.join(repr(c) for c in close)}?)"
    return f" ({what}: {', '.join(valid)})" if len(valid) <= _LISTED else ""


def _resolve_sql(job: JobSpecIn, base_dir: Path, problems: list[Problem]) -> str | None:
    def add(message: str) -> None:
        problems.append(Problem(message, job.key))

    problem = job_kinds.kind_problem(job)
    if problem is not None:
        add(problem)
        return None
    if job.sql is not None:
        sql = job.sql
    else:
        assert job.sql_file is not None
        path = (base_dir / job.sql_file).resolve()
        if not path.is_relative_to(base_dir.resolve()):
            add(f"sql_file '{job.sql_file}' must stay inside the manifest's folder")
            return None
        try:
            sql = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            add(f"sql_file '{job.sql_file}' not found (relative to {base_dir.name}/)")
            return None
        except (OSError, UnicodeDecodeError) as exc:
            add(f"sql_file '{job.sql_file}' cannot be read: {exc}")
            return None
    if not sql.strip():
        add("SQL is empty")
        return None
    return sql


def _compile_checks(job: JobSpecIn, problems: list[Problem]) -> tuple[CheckSpec, ...]:
    """Validate a job's checks and compile each to its query; problems are appended, one line each."""
    compiled: list[CheckSpec] = []
    seen: set[str] = set()
    for check in job.checks:

        def add(message: str, check: CheckSpecIn = check) -> None:
            problems.append(Problem(message, job.key, check.name))

        if not CHECK_NAME_PATTERN.fullmatch(check.name):
            add(f"name must match {CHECK_NAME_PATTERN.pattern} (it becomes a BigQuery label)")
        if check.name in seen:
            add("duplicate check name")
        seen.add(check.name)
        kinds = [kind for kind in CHECK_KINDS if getattr(check, kind) is not None]
        if len(kinds) != 1:
            found = ", ".join(kinds) or "none"
            add(f"give exactly one of the check kinds {', '.join(CHECK_KINDS)} (found: {found})")
            continue
        kind = kinds[0]
        table = check.table or job.destination
        if kind in RAW_CHECK_KINDS:
            if check.table is not None:
                add("'table' applies to named checks; raw SQL names its own tables")
                continue
        elif table is None:
            add(f"{kind} needs the job's destination or an explicit 'table'")
            continue
        elif not TABLE_PATTERN.fullmatch(table):
            add(f"table '{table}' is not a table id like dataset.table or project.dataset.table")
            continue
        try:
            sql, params = _check_sql(check, kind, table or "")
        except ValueError as exc:
            add(str(exc))
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
    if check.relationships is not None:
        rel = check.relationships
        if not TABLE_PATTERN.fullmatch(rel.to):
            raise ValueError(f"relationships: to '{rel.to}' is not a table id like dataset.table or project.dataset.table")
        return check_sql.relationships(table, rel.column, rel.to, rel.field), {}
    assert check.row_count_above is not None
    return check_sql.row_count_above(table, check.row_count_above), {}


def _upstreams(needs: Mapping[str, Sequence[str]], key: str) -> set[str]:
    """Every job `key` waits for, directly or through others."""
    found: set[str] = set()
    stack = list(needs.get(key, ()))
    while stack:
        upstream = stack.pop()
        if upstream not in found:
            found.add(upstream)
            stack.extend(needs.get(upstream, ()))
    return found


def _checks_read_upstreams(jobs: Sequence[JobSpecIn], resolved: Sequence[JobSpec]) -> list[Problem]:
    """A check may read other jobs' outputs, but only of jobs its job needs: else it reads another run's rows."""
    writers: dict[str, list[str]] = {}
    for job in jobs:
        if job.destination is not None:
            writers.setdefault(job.destination, []).append(job.key)
    needs = {job.key: job.needs for job in jobs}
    problems: list[Problem] = []
    for spec in resolved:
        upstreams = _upstreams(needs, spec.key)
        for check in spec.checks:
            for table in check_sql.tables_read(check.sql, writers):
                for writer in writers[table]:
                    if writer != spec.key and writer not in upstreams:
                        problems.append(
                            Problem(
                                f"reads {table}, which job '{writer}' writes, but '{spec.key}' does not need "
                                f"'{writer}': add it to needs so the check reads this run's rows",
                                spec.key,
                                check.name,
                            )
                        )
    return problems


def _find_cycles(jobs: Sequence[JobSpecIn]) -> list[list[str]]:
    """Each cycle once, as a path from its first job in manifest order back to it (iterative DFS: no recursion limit)."""
    order = {job.key: index for index, job in enumerate(jobs)}
    needs = {job.key: [up for up in job.needs if up in order] for job in jobs}
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    found: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
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
                if state.get(nxt) == 1 and nxt != node:  # a job needing itself is reported on its own
                    members = path[path.index(nxt) :]
                    first = min(range(len(members)), key=lambda i: order[members[i]])
                    rotated = members[first:] + members[:first]
                    # Edges point job -> what it needs; the path reads in run order, upstream first.
                    cycle = [rotated[0], *reversed(rotated[1:]), rotated[0]]
                    if tuple(rotated) not in seen:
                        seen.add(tuple(rotated))
                        found.append(cycle)
                elif nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, 0))
                    path.append(nxt)
            else:
                state[node] = 2
                stack.pop()
                path.pop()
    return found
