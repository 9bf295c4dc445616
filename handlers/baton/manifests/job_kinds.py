"""Load, copy and extract jobs: their rules, and the domain specs they become.

A job declares exactly one of `sql`, `sql_file`, `load`, `copy` or `extract`. Load and copy
jobs write their `destination` (so checks and the catalog work on it as for a query);
an extract job writes files, so it has no destination.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from baton.domain.specs import CopySpec, ExtractSpec, JobKind, LoadSpec
from baton.manifests.schema import TABLE_PATTERN, JobSpecIn

# gs://bucket/object: bucket names per Cloud Storage's rules (3-63 characters here; dotted names up to 222).
GCS_URI_PATTERN = re.compile(r"^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]/\S+$")
KIND_FIELDS = ("sql", "sql_file", "load", "copy", "extract")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,299}$")

Add = Callable[[str], None]


def declared_kind(job: JobSpecIn) -> JobKind | None:
    """The kind a job declares, or None when it declares none or more than one (a problem the caller reports)."""
    given = [
        name
        for name, value in (
            ("sql", job.sql),
            ("sql_file", job.sql_file),
            ("load", job.load),
            ("copy", job.copy_),
            ("extract", job.extract),
        )
        if value is not None
    ]
    if len(given) != 1:
        return None
    return {"load": JobKind.LOAD, "copy": JobKind.COPY, "extract": JobKind.EXTRACT}.get(given[0], JobKind.QUERY)


def kind_problem(job: JobSpecIn) -> str | None:
    """Why the job's kind is ambiguous or missing, naming the fields to choose from."""
    given = [name for name in KIND_FIELDS if getattr(job, "copy_" if name == "copy" else name) is not None]
    if len(given) == 1:
        return None
    found = f" (found: {', '.join(given)})" if given else ""
    return f"give exactly one of {', '.join(KIND_FIELDS)}{found}"


def _table(value: str, what: str, add: Add) -> bool:
    if TABLE_PATTERN.match(value):
        return True
    add(f"{what} '{value}' is not a table id like dataset.table or project.dataset.table")
    return False


def _uris(uris: list[str], what: str, add: Add) -> None:
    for uri in uris:
        if not GCS_URI_PATTERN.match(uri):
            add(f"{what} '{uri}' is not a Cloud Storage URI like gs://bucket/path/file.csv")


def load_spec(job: JobSpecIn, add: Add) -> LoadSpec | None:
    load = job.load
    assert load is not None
    if job.destination is None:
        add("load needs a destination table")
    _uris(load.source_uris, "load source", add)
    if (load.schema_ is None) == (not load.autodetect):
        add("load needs either a schema (column: type) or autodetect: true")
    if load.schema_ is not None:
        for column in load.schema_:
            if not _COLUMN.match(column):
                add(f"load schema: '{column}' is not a column name")
    if load.skip_leading_rows and load.format != "CSV":
        add(f"load: skip_leading_rows applies to CSV, not {load.format}")
    return LoadSpec(
        source_uris=tuple(load.source_uris),
        source_format=load.format,
        schema=tuple((load.schema_ or {}).items()),
        autodetect=load.autodetect,
        skip_leading_rows=load.skip_leading_rows,
    )


def copy_spec(job: JobSpecIn, add: Add) -> CopySpec | None:
    copy = job.copy_
    assert copy is not None
    if job.destination is None:
        add("copy needs a destination table")
    if (copy.source is None) == (copy.sources is None):
        add("copy: give exactly one of source or sources")
        return None
    sources = [copy.source] if copy.source is not None else list(copy.sources or [])
    if not sources:
        add("copy: sources is empty")
    valid = all([_table(source, "copy source", add) for source in sources])
    if job.destination is not None and job.destination in sources:
        add(f"copy: {job.destination} is both a source and the destination")
    return CopySpec(source_tables=tuple(sources)) if valid and sources else None


def extract_spec(job: JobSpecIn, add: Add) -> ExtractSpec | None:
    extract = job.extract
    assert extract is not None
    if job.destination is not None:
        add("extract writes files, not a table: remove destination (the files are extract.destination_uris)")
    if job.write_disposition is not None:
        add("extract writes files: write_disposition does not apply")
    _uris(extract.destination_uris, "extract destination", add)
    if not _table(extract.source, "extract source", add):
        return None
    return ExtractSpec(
        source_table=extract.source,
        destination_uris=tuple(extract.destination_uris),
        destination_format=extract.format,
        print_header=extract.print_header,
    )


def transfer_specs(job: JobSpecIn, add: Add) -> tuple[LoadSpec | None, CopySpec | None, ExtractSpec | None]:
    """The load, copy or extract spec of a job that declares one (the others None); problems go to `add`."""
    if job.load is not None:
        return load_spec(job, add), None, None
    if job.copy_ is not None:
        return None, copy_spec(job, add), None
    return None, None, extract_spec(job, add)
