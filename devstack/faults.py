"""Cloud faults the local stack can play: one rule list and a few switches, off until a test turns them on.

Google Cloud fails in ways the emulators never do (quota and rate refusals, slow or failing APIs, a full
query queue, truncated audit entries, results readable only by their owner, a function at its max
instances). The local BigQuery façade and the function fronts consult one `FaultBoard`; tests drive it
over HTTP (`POST /_faults` on the façade) with `FaultClient`, so the same rules work from another process.

The JSON document (every key optional)::

    {"rules": [{"method": "jobs.insert", "status": 403, "reason": "rateLimitExceeded",
                "count": 2, "probability": 1.0, "delay_s": 0.0,
                "job_id_prefix": "baton_", "labels": {"baton_job": "load"}, "identity": "", "function": ""}],
     "settings": {"job_queue": {"max_running": 2, "max_queued": 1000},
                  "owner_only_results": true,
                  "instance_limits": true, "instance_overrides": {"bigquery_job_completed": 0},
                  "instance_wait_s": 30.0}}

`POST` adds rules and merges settings, `GET` shows rules (with what is left of each), settings and
counters, `DELETE` clears everything back to the cloud-that-never-fails default.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import requests

__all__ = [
    "DEFAULT_MAX_QUEUED",
    "METHODS",
    "FaultBoard",
    "FaultClient",
    "FaultRule",
    "FaultSettings",
    "JobQueueLimits",
]

METHODS = frozenset({"jobs.insert", "jobs.get", "jobs.getQueryResults", "auditlog.jobDone", "function.invoke"})
"""Where a rule can apply: three BigQuery API methods, the DONE audit entry, and a call through a function front."""

DEFAULT_MAX_QUEUED = 1_000
"""BigQuery queues up to 1,000 interactive queries per project and region, then refuses."""

_REASON_BY_STATUS = {400: "invalid", 403: "accessDenied", 404: "notFound", 429: "rateLimitExceeded", 500: "backendError"}


class FaultDocumentError(ValueError):
    """A fault document does not have the documented shape; the façade answers it with 400."""


@dataclass(frozen=True)
class FaultRule:
    """One fault: where it applies, what it does, and how often.

    `status` answers an HTTP error (with `reason`, BigQuery's string reason); `delay_s` holds the call
    first (alone: a slow answer); `truncate` (auditlog.jobDone only) drops the entry's statistics as
    Cloud Logging does to entries over 100 KB. Matching: a job ID prefix, labels that must all be
    present, the caller's identity, or the function behind a front. `count` None means every match.
    """

    method: str
    status: int | None = None
    reason: str | None = None
    message: str | None = None
    delay_s: float = 0.0
    truncate: bool = False
    count: int | None = None
    probability: float = 1.0
    job_id_prefix: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    identity: str = ""
    function: str = ""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise FaultDocumentError(f"unknown method {self.method!r}; one of {', '.join(sorted(METHODS))}")
        if self.status is not None and not 400 <= self.status <= 599:
            raise FaultDocumentError(f"status {self.status} is not an HTTP error")
        if self.truncate != (self.method == "auditlog.jobDone"):
            raise FaultDocumentError("auditlog.jobDone rules truncate entries, and only they do")
        if not 0.0 <= self.probability <= 1.0 or self.delay_s < 0 or (self.count is not None and self.count < 1):
            raise FaultDocumentError("probability is 0..1, delay_s >= 0, count >= 1 (or absent for always)")

    @property
    def error_reason(self) -> str:
        return self.reason or _REASON_BY_STATUS.get(self.status or 500, "backendError")

    @property
    def error_message(self) -> str:
        return self.message or f"Simulated {self.error_reason} (injected by the local stack's fault rules)"

    def matches(self, method: str, job_id: str, labels: Mapping[str, str], identity: str, function: str) -> bool:
        return (
            method == self.method
            and job_id.startswith(self.job_id_prefix)
            and all(labels.get(key) == value for key, value in self.labels.items())
            and (not self.identity or identity == self.identity)
            and (not self.function or function == self.function)
        )

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value != _DEFAULTS.get(key)}

    @classmethod
    def from_json(cls, document: Any) -> FaultRule:
        if not isinstance(document, dict) or "method" not in document:
            raise FaultDocumentError("a rule is an object with at least a method")
        unknown = set(document) - set(_DEFAULTS) - {"method"}
        if unknown:
            raise FaultDocumentError(f"unknown rule keys: {', '.join(sorted(unknown))}")
        try:
            return cls(**{**document, "labels": dict(document.get("labels") or {})})
        except TypeError as exc:
            raise FaultDocumentError(str(exc)) from exc


_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(FaultRule) if f.name != "method"}
_DEFAULTS["labels"] = {}


@dataclass(frozen=True)
class JobQueueLimits:
    """BigQuery's query queue: `max_running` jobs RUNNING, up to `max_queued` more PENDING, then 403 quotaExceeded."""

    max_running: int
    max_queued: int = DEFAULT_MAX_QUEUED


@dataclass(frozen=True)
class FaultSettings:
    """The switches; all off by default."""

    job_queue: JobQueueLimits | None = None
    owner_only_results: bool = False  # anonymous result tables readable only by the identity that ran the query
    instance_limits: bool = False  # function fronts refuse with 429 beyond max instances x concurrency
    instance_overrides: Mapping[str, int] = field(default_factory=dict)  # entry point -> capacity, for small tests
    instance_wait_s: float = 30.0  # how long Cloud Run holds a request for a free instance before its 429

    def to_json(self) -> dict[str, Any]:
        return {
            "job_queue": asdict(self.job_queue) if self.job_queue else None,
            "owner_only_results": self.owner_only_results,
            "instance_limits": self.instance_limits,
            "instance_overrides": dict(self.instance_overrides),
            "instance_wait_s": self.instance_wait_s,
        }

    def merged(self, document: Any) -> FaultSettings:
        if not isinstance(document, dict):
            raise FaultDocumentError("settings is an object")
        unknown = set(document) - {f.name for f in fields(FaultSettings)}
        if unknown:
            raise FaultDocumentError(f"unknown settings: {', '.join(sorted(unknown))}")
        changes = dict(document)
        if "job_queue" in changes:
            queue = changes["job_queue"]
            try:
                changes["job_queue"] = JobQueueLimits(**queue) if queue else None
            except TypeError as exc:
                raise FaultDocumentError(f"job_queue: {exc}") from exc
            if queue and (changes["job_queue"].max_running < 0 or changes["job_queue"].max_queued < 0):
                raise FaultDocumentError("job_queue limits are >= 0")
        if "instance_wait_s" in changes:
            changes["instance_wait_s"] = float(changes["instance_wait_s"])
        if "instance_overrides" in changes:
            changes["instance_overrides"] = {str(k): int(v) for k, v in dict(changes["instance_overrides"] or {}).items()}
        return replace(self, **changes)


@dataclass
class _LiveRule:
    rule: FaultRule
    remaining: int | None
    hits: int = 0


class FaultBoard:
    """The fault state of one local stack: rules, settings and counters; thread-safe."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rules: list[_LiveRule] = []
        self._settings = FaultSettings()
        self._counters: dict[str, int] = {}
        self._random = random.Random(seed)  # noqa: S311 (reproducible fault draws, not secrets)

    @property
    def settings(self) -> FaultSettings:
        with self._lock:
            return self._settings

    def add(self, *rules: FaultRule) -> None:
        with self._lock:
            self._rules.extend(_LiveRule(rule, rule.count) for rule in rules)

    def configure(self, document: Mapping[str, Any]) -> None:
        with self._lock:
            self._settings = self._settings.merged(dict(document))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._settings = FaultSettings()
            self._counters.clear()

    def take(
        self,
        method: str,
        *,
        job_id: str = "",
        labels: Mapping[str, str] | None = None,
        identity: str = "",
        function: str = "",
    ) -> FaultRule | None:
        """The first live rule that matches and fires (its count is spent); None: behave as the cloud on a good day."""
        with self._lock:
            for live in self._rules:
                if live.remaining == 0 or not live.rule.matches(method, job_id, labels or {}, identity, function):
                    continue
                if live.rule.probability < 1.0 and self._random.random() >= live.rule.probability:
                    continue
                if live.remaining is not None:
                    live.remaining -= 1
                live.hits += 1
                self._counters[f"{method}.faulted"] = self._counters.get(f"{method}.faulted", 0) + 1
                return live.rule
        return None

    def count(self, name: str) -> None:
        with self._lock:
            self._counters[name] = self._counters.get(name, 0) + 1

    def counter(self, name: str) -> int:
        with self._lock:
            return self._counters.get(name, 0)

    def apply(self, document: Any) -> None:
        """A POSTed document: validated whole before anything changes."""
        if not isinstance(document, dict) or set(document) - {"rules", "settings"}:
            raise FaultDocumentError('a fault document is {"rules": [...], "settings": {...}}')
        raw_rules = document.get("rules") or []
        if not isinstance(raw_rules, list):
            raise FaultDocumentError("rules is a list")
        rules = [FaultRule.from_json(rule) for rule in raw_rules]
        settings = self.settings.merged(document.get("settings") or {})
        with self._lock:
            self._rules.extend(_LiveRule(rule, rule.count) for rule in rules)
            self._settings = settings

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "rules": [{**live.rule.to_json(), "remaining": live.remaining, "hits": live.hits} for live in self._rules],
                "settings": self._settings.to_json(),
                "counters": dict(self._counters),
            }


class FaultClient:
    """Tests' handle on a running stack's faults (the façade's `/_faults`), from any process."""

    def __init__(self, endpoint: str, timeout_s: float = 10.0) -> None:
        self.url = endpoint.rstrip("/") + "/_faults"
        self.timeout_s = timeout_s

    def add(self, *rules: FaultRule) -> None:
        self._post({"rules": [rule.to_json() for rule in rules]})

    def configure(
        self,
        *,
        job_queue: JobQueueLimits | None = None,
        owner_only_results: bool | None = None,
        instance_limits: bool | None = None,
        instance_overrides: Mapping[str, int] | None = None,
        instance_wait_s: float | None = None,
    ) -> None:
        settings: dict[str, Any] = {}
        if job_queue is not None:
            settings["job_queue"] = asdict(job_queue)
        if owner_only_results is not None:
            settings["owner_only_results"] = owner_only_results
        if instance_limits is not None:
            settings["instance_limits"] = instance_limits
        if instance_overrides is not None:
            settings["instance_overrides"] = dict(instance_overrides)
        if instance_wait_s is not None:
            settings["instance_wait_s"] = instance_wait_s
        self._post({"settings": settings})

    def state(self) -> dict[str, Any]:
        response = requests.get(self.url, timeout=self.timeout_s)
        response.raise_for_status()
        state: dict[str, Any] = response.json()
        return state

    def counters(self) -> dict[str, int]:
        return dict(self.state()["counters"])

    def clear(self) -> None:
        requests.delete(self.url, timeout=self.timeout_s).raise_for_status()

    @contextmanager
    def injected(self, *rules: FaultRule) -> Iterator[FaultClient]:
        """Rules for the block only; everything is cleared after it (also on failure)."""
        self.add(*rules)
        try:
            yield self
        finally:
            self.clear()

    def _post(self, document: Mapping[str, Any]) -> None:
        response = requests.post(self.url, data=json.dumps(document), timeout=self.timeout_s)
        if response.status_code != 200:
            raise FaultDocumentError(f"{self.url} refused the document: {response.status_code} {response.text[:300]}")
