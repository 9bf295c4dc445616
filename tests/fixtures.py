"""Sample payloads under tests/fixtures/, loaded by name so tests never build paths themselves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"


def load_fixture(name: str) -> dict[str, Any]:
    """A fresh copy of `tests/fixtures/<name>.json` (e.g. "audit_log/job_done_success"); it must hold a JSON object."""
    path = FIXTURES_DIR / (name if name.endswith(".json") else f"{name}.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise TypeError(f"fixture {name} holds {type(data).__name__}, not a JSON object")
    return data
