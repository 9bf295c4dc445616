"""Which datasets a job reads and writes, and the rule that each is one the environment declares.

The datasets are declared once, in the environment's config (the platform stack creates them,
the handlers get them as BATON_DATASETS); a manifest that touches any other is refused by
name, before a run starts, instead of failing in BigQuery with notFound halfway through.

What a job touches: its destination, a load's destination, a copy's sources and destination,
an extract's source, the tables its named checks read, and the dataset-qualified table names
in its SQL (and in raw-SQL checks) found by `SQL_TABLE_PATTERN`: a name of two or three
dot-separated parts, backquoted or not, right after FROM, JOIN, INTO, UPDATE, TABLE, USING or
MERGE. Comments, string literals, `EXTRACT(part FROM column)` and `IS DISTINCT FROM` are
skipped first. One-part names (CTEs, a default dataset) carry no dataset and are not checked;
three-part names in another project belong to that project and are not checked either. A
correlated array join written `FROM t, t.items` reads as dataset `t`: write `UNNEST(t.items)`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from baton.domain.specs import JobSpec

SQL_TABLE_PATTERN = re.compile(
    r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE|USING|MERGE)\s+(?P<name>`[^`]+`(?:\.`[^`]+`){0,2}|[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+){1,2})",
    re.IGNORECASE,
)
_COMMENTS_AND_STRINGS = re.compile(r"--[^\n]*|#[^\n]*|/\*.*?\*/|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", re.DOTALL)
_NOT_A_TABLE_FROM = re.compile(r"\bEXTRACT\s*\(\s*[A-Za-z_]+(?:\s*\([^)]*\))?\s+FROM\b|\bDISTINCT\s+FROM\b", re.IGNORECASE)


@dataclass(frozen=True)
class DeclaredDatasets:
    """The environment's datasets (id -> location) and its project: what a manifest may read and write."""

    datasets: Mapping[str, str]
    project: str | None = None

    @classmethod
    def parse(cls, text: str, project: str | None = None) -> DeclaredDatasets:
        """BATON_DATASETS: a JSON object of dataset id -> location, e.g. {"landing": "US"}."""
        import json

        try:
            value = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"BATON_DATASETS is not JSON: {exc}") from exc
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ValueError('BATON_DATASETS must be a JSON object of dataset id -> location, e.g. {"landing": "US"}')
        return cls(dict(value), project)

    def to_env(self) -> str:
        import json

        return json.dumps(dict(sorted(self.datasets.items())), separators=(",", ":"))


def sql_tables(sql: str) -> list[str]:
    """The dataset-qualified table names in `sql` (`dataset.table` or `project.dataset.table`), in order of appearance."""
    text = _NOT_A_TABLE_FROM.sub(" ", _COMMENTS_AND_STRINGS.sub(" ", sql))
    found: list[str] = []
    for match in SQL_TABLE_PATTERN.finditer(text):
        name = match["name"].replace("`", "")
        if name.count(".") in (1, 2) and name not in found:
            found.append(name)
    return found


def tables_touched(job: JobSpec) -> Iterator[str]:
    """Every table a job reads or writes, as written in the manifest (two or three parts)."""
    if job.destination:
        yield job.destination
    if job.copy is not None:
        yield from job.copy.source_tables
    if job.extract is not None:
        yield job.extract.source_table
    if job.sql:
        yield from sql_tables(job.sql)
    for check in job.checks:
        yield from sql_tables(check.sql)


def dataset_of(table: str, project: str | None) -> str | None:
    """The dataset of a table name, or None when it names no dataset or one in another project."""
    parts = table.split(".")
    if len(parts) == 2:
        return parts[0]
    if len(parts) == 3 and (project is None or parts[0] == project):
        return parts[1]
    return None


def undeclared_datasets(job: JobSpec, declared: Mapping[str, str], project: str | None) -> list[tuple[str, str]]:
    """(dataset, table) for each table of `job` in a dataset the environment does not declare, first mention only."""
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for table in tables_touched(job):
        dataset = dataset_of(table, project)
        if dataset is not None and dataset not in declared and dataset not in seen:
            seen.add(dataset)
            problems.append((dataset, table))
    return problems


def dataset_problems(jobs: Sequence[JobSpec], declared: Mapping[str, str], project: str | None) -> list[tuple[str, str]]:
    """(job key, message) for every undeclared dataset a manifest's jobs touch, naming the dataset and the declared ones."""
    known = ", ".join(sorted(declared)) or "none"
    return [
        (job.key, f"dataset '{dataset}' (in {table}) is not declared for this environment (declared: {known})")
        for job in jobs
        for dataset, table in undeclared_datasets(job, declared, project)
    ]
