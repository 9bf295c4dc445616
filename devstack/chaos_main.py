"""functions-framework source for the chaos suite: the real handlers, dying where it hurts most.

A completion that releases jobs commits to Spanner first and calls jobs.insert after.
The worst moment for its instance to die is in between: the dependents are READY in
Spanner and unknown to BigQuery. This module serves the entry points of
handlers/main.py unchanged, except that an invocation of `bigquery_job_completed`
is drawn with probability CHAOS_CRASH_PROBABILITY to die right before its first
jobs.insert, answering 500 as a crashed instance would. Production code has no hook
for it: the submitter is wrapped here, around the composition root.

Environment (besides the handlers' own):
  CHAOS_CRASH_PROBABILITY  0..1, default 0
  CHAOS_CRASH_LABEL        only jobs carrying this label key can crash (default: any job)
  CHAOS_SEED               seed of the draws (default: unseeded)
  CHAOS_RECORD             a file to append one JSON line to per injected crash
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import threading
import time
from contextvars import ContextVar
from pathlib import Path
from types import ModuleType
from typing import Any

import flask
import functions_framework

from baton import bootstrap
from baton.config import Settings
from baton.service.orchestrator import Orchestrator
from baton.service.ports import JobSubmitter, RemoteJob, SubmitOutcome, SubmitRequest, TableSize

HANDLERS_MAIN = Path(__file__).resolve().parent.parent / "handlers" / "main.py"


def _load_handlers(path: Path) -> ModuleType:
    """handlers/main.py under its own module name, so it cannot clash with this one."""
    spec = importlib.util.spec_from_file_location("baton_handlers_main", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class CrashBeforeInsert(RuntimeError):
    """The injected crash: the state change is committed, the job never reached BigQuery."""


class _Chaos:
    def __init__(self, env: dict[str, str]) -> None:
        self.probability = float(env.get("CHAOS_CRASH_PROBABILITY") or 0)
        self.label = env.get("CHAOS_CRASH_LABEL") or None
        seed = env.get("CHAOS_SEED")
        self.random = random.Random(int(seed)) if seed else random.Random()  # noqa: S311 - test chaos, not crypto
        self.record = Path(env["CHAOS_RECORD"]) if env.get("CHAOS_RECORD") else None
        self.lock = threading.Lock()
        self.armed: ContextVar[bool] = ContextVar("chaos_armed", default=False)

    def draw(self) -> bool:
        with self.lock:
            return self.random.random() < self.probability

    def crash(self, request: SubmitRequest) -> None:
        if self.record is not None:
            line = {"job_id": request.job_id, "labels": dict(request.labels), "time": time.time()}
            with self.lock, self.record.open("a") as out:
                out.write(json.dumps(line) + "\n")
        raise CrashBeforeInsert(f"chaos: the instance died before jobs.insert of {request.job_id}")


CHAOS = _Chaos(dict(os.environ))


class CrashingSubmitter(JobSubmitter):
    """The real submitter, except that an armed invocation dies before its first insert of a labelled job."""

    def __init__(self, inner: JobSubmitter, chaos: _Chaos) -> None:
        self.inner = inner
        self.chaos = chaos

    def submit(self, request: SubmitRequest) -> SubmitOutcome:
        if self.chaos.armed.get() and (self.chaos.label is None or self.chaos.label in request.labels):
            self.chaos.armed.set(False)  # an instance dies once
            self.chaos.crash(request)
        return self.inner.submit(request)

    def cancel(self, job_id: str) -> None:
        self.inner.cancel(job_id)

    def lookup(self, job_id: str) -> RemoteJob | None:
        return self.inner.lookup(job_id)

    def sample_rows(self, job_id: str, limit: int) -> list[dict[str, Any]]:
        return self.inner.sample_rows(job_id, limit)

    def table_size(self, table_ref: str) -> TableSize | None:
        return self.inner.table_size(table_ref)


_real_build = bootstrap.build


def _build_with_chaos(settings: Settings) -> Orchestrator:
    orchestrator = _real_build(settings)
    orchestrator.submitter = CrashingSubmitter(orchestrator.submitter, CHAOS)
    return orchestrator


setattr(bootstrap, "build", _build_with_chaos)  # noqa: B010 - the composition root is what gets wrapped

_handlers = _load_handlers(HANDLERS_MAIN)
start_manifest = _handlers.start_manifest
reconcile = _handlers.reconcile


@functions_framework.http
def bigquery_job_completed(request: flask.Request) -> Any:
    """The real handler, drawn to die before its first jobs.insert."""
    token = CHAOS.armed.set(CHAOS.draw())
    try:
        return _handlers.bigquery_job_completed(request)
    finally:
        CHAOS.armed.reset(token)
