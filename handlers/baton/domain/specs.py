"""What a run snapshots of its manifest: plain, frozen specs the transitions read.

The manifest parser (baton.manifests) validates YAML and produces these; stores
serialise them with `to_json` / `from_json`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from baton.domain.bigquery_reasons import RETRYABLE_REASONS

ParamValue = str | int | float | bool

# BigQuery error reasons that a second attempt can cure, unless a job says otherwise.
DEFAULT_RETRYABLE_REASONS: tuple[str, ...] = tuple(sorted(RETRYABLE_REASONS))


@dataclass(frozen=True)
class RetrySpec:
    """How often a job may run, and which BigQuery error reasons earn another attempt."""

    max_attempts: int = 3
    retryable_reasons: tuple[str, ...] = DEFAULT_RETRYABLE_REASONS
    backoff_seconds: float = 0.0
    backoff_multiplier: float = 2.0

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before `attempt` (2 is the first retry)."""
        return float(self.backoff_seconds * self.backoff_multiplier ** max(attempt - 2, 0))

    def to_json(self) -> dict[str, Any]:
        return {
            "max_attempts": self.max_attempts,
            "retryable_reasons": list(self.retryable_reasons),
            "backoff_seconds": float(self.backoff_seconds),
            "backoff_multiplier": float(self.backoff_multiplier),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RetrySpec:
        default = cls()
        return cls(
            max_attempts=int(data.get("max_attempts", default.max_attempts)),
            retryable_reasons=tuple(data.get("retryable_reasons", default.retryable_reasons)),
            backoff_seconds=float(data.get("backoff_seconds", default.backoff_seconds)),
            backoff_multiplier=float(data.get("backoff_multiplier", default.backoff_multiplier)),
        )


@dataclass(frozen=True)
class BoundParam:
    """A run param checked against its declaration: the BigQuery type and the typed value."""

    type: str
    value: ParamValue

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "value": self.value}


class Severity(StrEnum):
    ERROR = "error"  # a failure fails the job: downstream is skipped
    WARN = "warn"  # a failure is recorded as a warning; the job still succeeds


@dataclass(frozen=True)
class CheckSpec:
    """A compiled check, snapshotted with its job into every run."""

    name: str
    severity: Severity
    sql: str  # returns no rows when the check passes
    kind: str  # what the manifest declared: not_null, unique, ..., sql_returns_no_rows, sql_is_true
    params: Mapping[str, ParamValue] = field(default_factory=dict)
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "severity": str(self.severity), "kind": self.kind, "sql": self.sql}
        if self.params:
            out["params"] = dict(self.params)
        if self.description:
            out["description"] = self.description
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CheckSpec:
        return cls(
            name=data["name"],
            severity=Severity(data["severity"]),
            sql=data["sql"],
            kind=data["kind"],
            params=dict(data.get("params", {})),
            description=data.get("description", ""),
        )


class JobKind(StrEnum):
    """What BigQuery job a manifest job becomes: a query (`sql`), or a load, copy or extract job."""

    QUERY = "query"
    LOAD = "load"
    COPY = "copy"
    EXTRACT = "extract"


@dataclass(frozen=True)
class LoadSpec:
    """Files in Cloud Storage loaded into the job's `destination` (with its write disposition)."""

    source_uris: tuple[str, ...]
    source_format: str  # CSV, NEWLINE_DELIMITED_JSON, PARQUET
    schema: tuple[tuple[str, str], ...] = ()  # (column, BigQuery type) in order; empty with autodetect
    autodetect: bool = False
    skip_leading_rows: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "source_uris": list(self.source_uris),
            "source_format": self.source_format,
            "schema": [list(column) for column in self.schema],
            "autodetect": self.autodetect,
            "skip_leading_rows": self.skip_leading_rows,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LoadSpec:
        return cls(
            source_uris=tuple(data["source_uris"]),
            source_format=data["source_format"],
            schema=tuple((str(name), str(type_)) for name, type_ in data.get("schema", ())),
            autodetect=bool(data.get("autodetect", False)),
            skip_leading_rows=int(data.get("skip_leading_rows", 0)),
        )


@dataclass(frozen=True)
class CopySpec:
    """Tables copied into the job's `destination` (with its write disposition)."""

    source_tables: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"source_tables": list(self.source_tables)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CopySpec:
        return cls(source_tables=tuple(data["source_tables"]))


@dataclass(frozen=True)
class ExtractSpec:
    """A table written to Cloud Storage; the job has no destination table."""

    source_table: str
    destination_uris: tuple[str, ...]
    destination_format: str  # CSV, NEWLINE_DELIMITED_JSON
    print_header: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "source_table": self.source_table,
            "destination_uris": list(self.destination_uris),
            "destination_format": self.destination_format,
            "print_header": self.print_header,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExtractSpec:
        return cls(
            source_table=data["source_table"],
            destination_uris=tuple(data["destination_uris"]),
            destination_format=data["destination_format"],
            print_header=bool(data.get("print_header", True)),
        )


@dataclass(frozen=True)
class JobSpec:
    """A job as it will run: SQL resolved, defaults applied. Snapshotted into each run.

    A query job has `sql`; a load, copy or extract job has its spec instead (and `sql` is empty).
    Load and copy jobs write `destination`, so checks and the catalog treat them like queries.
    """

    key: str
    sql: str
    needs: tuple[str, ...]
    retry: RetrySpec = field(default_factory=RetrySpec)
    destination: str | None = None
    write_disposition: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, ParamValue] = field(default_factory=dict)
    checks: tuple[CheckSpec, ...] = ()
    timeout_seconds: int | None = None  # past it, the reconciler cancels the job and fails it with reason `timeout`
    load: LoadSpec | None = None
    copy: CopySpec | None = None
    extract: ExtractSpec | None = None
    pool: str | None = None  # the environment's pool whose slot the job holds while BigQuery has it
    priority: int = 0  # among QUEUED jobs of its pool: higher first, then the older

    @property
    def kind(self) -> JobKind:
        if self.load is not None:
            return JobKind.LOAD
        if self.copy is not None:
            return JobKind.COPY
        if self.extract is not None:
            return JobKind.EXTRACT
        return JobKind.QUERY

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key,
            "sql": self.sql,
            "needs": list(self.needs),
            "retry": self.retry.to_json(),
            "destination": self.destination,
            "write_disposition": self.write_disposition,
            "labels": dict(self.labels),
            "params": dict(self.params),
        }
        if self.checks:  # absent when empty, so manifests without checks keep their version hash
            out["checks"] = [check.to_json() for check in self.checks]
        # Each kind's spec only when present, so query jobs keep the JSON (and manifest versions) they had.
        if self.load is not None:
            out["load"] = self.load.to_json()
        if self.copy is not None:
            out["copy"] = self.copy.to_json()
        if self.extract is not None:
            out["extract"] = self.extract.to_json()
        if self.timeout_seconds is not None:  # likewise
            out["timeout_seconds"] = self.timeout_seconds
        if self.pool is not None:  # likewise
            out["pool"] = self.pool
        if self.priority:
            out["priority"] = self.priority
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobSpec:
        return cls(
            key=data["key"],
            sql=data["sql"],
            needs=tuple(data.get("needs", ())),
            retry=RetrySpec.from_json(data.get("retry", {})),
            destination=data.get("destination"),
            write_disposition=data.get("write_disposition"),
            labels=dict(data.get("labels", {})),
            params=dict(data.get("params", {})),
            checks=tuple(CheckSpec.from_json(check) for check in data.get("checks", ())),
            load=LoadSpec.from_json(data["load"]) if data.get("load") else None,
            copy=CopySpec.from_json(data["copy"]) if data.get("copy") else None,
            extract=ExtractSpec.from_json(data["extract"]) if data.get("extract") else None,
            timeout_seconds=data.get("timeout_seconds"),
            pool=data.get("pool"),
            priority=int(data.get("priority", 0)),
        )
