"""The manifest's YAML schema (pydantic): what a data engineer may write, field by field.

Structure only; the rules across fields (unknown upstreams, cycles, tables, checks)
are in validation.py, which turns a valid model into domain specs.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from baton.domain.specs import DEFAULT_RETRYABLE_REASONS, ParamValue, RetrySpec, Severity

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
# A start while a run of the manifest is RUNNING: waits for it (queue), is refused (skip), or runs beside it (allow).
Concurrency = Literal["queue", "allow", "skip"]
# A start while the manifest is paused (`baton pause`): refused (409), or queued until `baton resume`.
WhenPaused = Literal["refuse", "queue"]

# The kinds of check a manifest may declare, named checks first; each is a field of CheckSpecIn.
NAMED_CHECK_KINDS = ("not_null", "unique", "accepted_values", "row_count_above", "relationships")
RAW_CHECK_KINDS = ("sql_returns_no_rows", "sql_is_true")
CHECK_KINDS = NAMED_CHECK_KINDS + RAW_CHECK_KINDS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryIn(_Strict):
    """How often a job may run, and which BigQuery error reasons earn another attempt."""

    max_attempts: int = Field(default=3, ge=1, le=10)
    retryable_reasons: tuple[str, ...] = DEFAULT_RETRYABLE_REASONS
    backoff_seconds: float = Field(default=0.0, ge=0, le=3600)
    backoff_multiplier: float = Field(default=2.0, ge=1, le=10)

    def to_spec(self) -> RetrySpec:
        return RetrySpec(self.max_attempts, tuple(self.retryable_reasons), self.backoff_seconds, self.backoff_multiplier)


class ParamSpec(_Strict):
    type: ParamType = "STRING"
    default: ParamValue | None = None
    description: str = ""


class AcceptedValuesIn(_Strict):
    column: str
    values: list[ParamValue] = Field(min_length=1)


class RelationshipsIn(_Strict):
    """Every non-NULL `column` value exists in `to`'s `field` (a foreign key, as dbt's relationships test)."""

    column: str
    to: str
    field: str


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
    relationships: RelationshipsIn | None = None


LoadFormat = Literal["CSV", "NEWLINE_DELIMITED_JSON", "PARQUET"]
ExtractFormat = Literal["CSV", "NEWLINE_DELIMITED_JSON"]
ColumnType = Literal["STRING", "INT64", "FLOAT64", "NUMERIC", "BOOL", "DATE", "DATETIME", "TIMESTAMP", "BYTES"]


class LoadIn(_Strict):
    """Files in Cloud Storage into the job's destination: `schema` (column: type, in order) or `autodetect`."""

    source_uris: list[str] = Field(min_length=1)
    format: LoadFormat = "CSV"
    schema_: dict[str, ColumnType] | None = Field(default=None, alias="schema")
    autodetect: bool = False
    skip_leading_rows: int = Field(default=0, ge=0, strict=True)


class CopyIn(_Strict):
    """One table, or several (`sources`), copied into the job's destination."""

    source: str | None = None
    sources: list[str] | None = None


class ExtractIn(_Strict):
    """A table written to Cloud Storage (`*` in a URI shards the files, as in BigQuery)."""

    source: str
    destination_uris: list[str] = Field(min_length=1)
    format: ExtractFormat = "CSV"
    print_header: bool = True


class JobSpecIn(_Strict):
    key: str
    sql: str | None = None
    sql_file: str | None = None
    load: LoadIn | None = None
    copy_: CopyIn | None = Field(default=None, alias="copy")
    extract: ExtractIn | None = None
    destination: str | None = None
    write_disposition: WriteDisposition | None = None
    needs: tuple[str, ...] = ()
    retry: RetryIn | None = None
    timeout: int | str | None = None  # seconds, or "90s", "30m", "2h": past it the reconciler cancels the job
    pool: str | None = None  # one of the environment's pools (BATON_POOLS); overrides the manifest's
    priority: int | None = Field(default=None, ge=-1000, le=1000)  # among QUEUED jobs of its pool: higher first
    labels: dict[str, str] = Field(default_factory=dict)
    params: dict[str, ParamValue] = Field(default_factory=dict)
    checks: list[CheckSpecIn] = Field(default_factory=list)
    description: str = ""


class ManifestHeaderIn(_Strict):
    """Everything but the jobs: validated on its own so that a bad job does not hide the header's problems."""

    name: str
    description: str = ""
    schedule: str | None = None
    time_zone: str = "Etc/UTC"
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    retry: RetryIn = RetryIn()
    timeout: int | str | None = None  # every job's, unless a job sets its own
    pool: str | None = None  # every job's pool, unless a job names its own; none: not limited
    priority: int = Field(default=0, ge=-1000, le=1000)  # every job's, unless a job sets its own
    # The whole run's, from when it starts RUNNING (and again from a retry): past it the run is cancelled, with run.timed_out.
    run_timeout: int | str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    concurrency: Concurrency = "queue"
    when_paused: WhenPaused = "refuse"


class ManifestIn(ManifestHeaderIn):
    jobs: list[JobSpecIn]
