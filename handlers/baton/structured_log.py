"""JSON log lines that Cloud Logging parses: severity, message, and run/job labels on every line."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any, TextIO

_LABEL_FIELDS = ("run_id", "job_key", "attempt", "manifest", "environment", "bigquery_job_id")


def log(severity: str, message: str, stream: TextIO | None = None, **fields: Any) -> None:
    """One line on stdout; fields that identify a run or job also go into the entry's labels."""
    labels = {name: str(fields[name]) for name in _LABEL_FIELDS if fields.get(name) is not None}
    # `time` is Cloud Logging's special field for the entry's timestamp; locally it orders lines across functions.
    entry: dict[str, Any] = {"severity": severity, "message": message, "time": _now(), **fields}
    if labels:
        entry["logging.googleapis.com/labels"] = labels
    print(json.dumps(entry, default=str, sort_keys=True), file=stream or sys.stdout, flush=True)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def info(message: str, **fields: Any) -> None:
    log("INFO", message, **fields)


def warning(message: str, **fields: Any) -> None:
    log("WARNING", message, **fields)


def error(message: str, **fields: Any) -> None:
    log("ERROR", message, **fields)
