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


@dataclass(frozen=True)
class JobSpec:
    """A job as it will run: SQL resolved, defaults applied. Snapshotted into each run."""

    key: str
    sql: str
    needs: tuple[str, ...]
    retry: RetrySpec = field(default_factory=RetrySpec)
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
            "retry": self.retry.to_json(),
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
            retry=RetrySpec.from_json(data.get("retry", {})),
            destination=data.get("destination"),
            write_disposition=data.get("write_disposition"),
            labels=dict(data.get("labels", {})),
            params=dict(data.get("params", {})),
            checks=tuple(CheckSpec.from_json(check) for check in data.get("checks", ())),
        )
