"""A validated manifest: its jobs as domain specs, its params, and its version (the snapshot's identity)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from baton.domain.specs import BoundParam, JobSpec
from baton.errors import InvalidParams
from baton.manifests.params import coerce_param
from baton.manifests.schema import Concurrency, ParamSpec, WhenPaused


@dataclass(frozen=True)
class Manifest:
    name: str
    source: str
    jobs: tuple[JobSpec, ...]
    params: Mapping[str, ParamSpec]
    schedule: str | None = None
    time_zone: str = "Etc/UTC"
    description: str = ""
    concurrency: Concurrency = "queue"
    when_paused: WhenPaused = "refuse"
    run_timeout_seconds: int | None = None  # `run_timeout:` (domain/transitions/run_timeout.py)

    @property
    def queue_limit(self) -> int | None:
        """How many of its runs may be RUNNING at once (domain/transitions/run_queue.py); None: any number."""
        return None if self.concurrency == "allow" else 1

    def date_params(self) -> list[str]:
        """Its DATE params: a backfill binds each date to one of them."""
        return [name for name, spec in self.params.items() if spec.type == "DATE"]

    @property
    def version(self) -> str:
        """Content hash of everything that affects a run: the snapshot's identity."""
        body: dict[str, Any] = {
            "name": self.name,
            "params": {k: v.model_dump(mode="json") for k, v in sorted(self.params.items())},
            "jobs": [job.to_json() for job in self.jobs],
        }
        if self.run_timeout_seconds is not None:  # only when set, so the versions of manifests without one stay
            body["run_timeout_seconds"] = self.run_timeout_seconds
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
