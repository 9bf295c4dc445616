"""The handlers' log lines of one run: from the local stack's function logs, or where to find them in Cloud Logging.

The functions log one JSON object per line (baton/structured_log.py) with the run and job
in `logging.googleapis.com/labels`, which Cloud Logging turns into the entry's labels.
Locally each function's output is `<stack>/logs/fn-<entry point>.log`.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LABELS_KEY = "logging.googleapis.com/labels"
FUNCTION_LOG_PREFIX = "fn-"
_SHOWN_ELSEWHERE = {"severity", "message", "time", LABELS_KEY, "run_id"}


@dataclass(frozen=True)
class LogLine:
    function: str
    entry: dict[str, Any]
    order: int  # position in its file, for lines without a time

    @property
    def time(self) -> str:
        return str(self.entry.get("time") or "")

    def text(self) -> str:
        extra = " ".join(f"{key}={_value(value)}" for key, value in self.entry.items() if key not in _SHOWN_ELSEWHERE)
        time = self.time.replace("T", " ").removesuffix("Z") or "-"
        severity, message = self.entry.get("severity", "-"), self.entry.get("message", "")
        return f"{time}  {self.function:<24} {severity:<7} {message}  {extra}".rstrip()


def _value(value: object) -> str:
    return value if isinstance(value, str) and " " not in value else json.dumps(value, default=str)


def _matches(entry: dict[str, Any], run_id: str, job_key: str | None) -> bool:
    raw = entry.get(LABELS_KEY)
    labels: dict[str, Any] = raw if isinstance(raw, dict) else {}
    if (entry.get("run_id") or labels.get("run_id")) != run_id:
        return False
    return job_key is None or (entry.get("job_key") or labels.get("job_key")) == job_key


def local_lines(logs_dir: Path, run_id: str, job_key: str | None = None) -> list[LogLine]:
    """Every function's lines about the run (and job), ordered by time (a line without one keeps its file order)."""
    found: list[LogLine] = []
    for path in sorted(logs_dir.glob(f"{FUNCTION_LOG_PREFIX}*.log")):
        function = path.stem.removeprefix(FUNCTION_LOG_PREFIX)
        for order, entry in enumerate(_json_lines(path)):
            if _matches(entry, run_id, job_key):
                found.append(LogLine(function, entry, order))
    return sorted(found, key=lambda line: (line.time, line.function, line.order))


def _json_lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8", errors="replace") as handle:
        for raw in handle:
            if not raw.startswith("{"):
                continue  # functions-framework's and the server's own lines
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if isinstance(entry, dict):
                yield entry


def cloud_filter(environment: str, run_id: str, job_key: str | None = None) -> str:
    """The Logging query of the run's lines: the labels every line carries, within the environment's functions."""
    parts = [f'labels.run_id="{run_id}"', f'resource.labels.service_name=~"^baton-{environment}-"']
    if job_key is not None:
        parts.append(f'labels.job_key="{job_key}"')
    return " AND ".join(parts)


def gcloud_command(project: str, query: str) -> str:
    return f"gcloud logging read {shlex.quote(query)} --project {shlex.quote(project)} --order asc --freshness 30d"


def cloud_lines(project: str, query: str, limit: int) -> list[LogLine]:
    """Read through google-cloud-logging; only called when it is installed."""
    from google.cloud import logging as cloud_logging  # type: ignore[attr-defined,unused-ignore]

    client = cloud_logging.Client(project=project)
    lines = []
    for order, entry in enumerate(client.list_entries(filter_=query, order_by=cloud_logging.ASCENDING, max_results=limit)):
        payload = entry.payload if isinstance(entry.payload, dict) else {"message": str(entry.payload)}
        payload = {**payload, "time": entry.timestamp.isoformat() if entry.timestamp else "", "severity": entry.severity}
        service = (entry.resource.labels or {}).get("service_name", "-") if entry.resource else "-"
        lines.append(LogLine(service, payload, order))
    return lines
