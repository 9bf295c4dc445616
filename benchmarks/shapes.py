"""Synthetic manifests of any size, built as the YAML a data engineer would write.

Every job is `SELECT 1`: what is measured is Baton's work per event, never the
query. Keys sort in DAG order, so the n-th event of a chain is easy to name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from baton.manifests.loading import parse_manifest
from baton.manifests.model import Manifest

SQL = "SELECT 1"


def chain(name: str, jobs: int) -> dict[str, Any]:
    """j00000 -> j00001 -> ...: every event releases exactly one job."""
    return {
        "name": name,
        "jobs": [{"key": chain_key(i), "sql": SQL, **({"needs": [chain_key(i - 1)]} if i else {})} for i in range(jobs)],
    }


def chain_key(index: int) -> str:
    return f"j{index:05d}"


def fan_in(name: str, jobs: int) -> dict[str, Any]:
    """jobs-1 independent jobs p00000.. feeding one `sink`: a sibling's event releases nothing until the last."""
    parallel = [sibling_key(i) for i in range(jobs - 1)]
    return {
        "name": name,
        "jobs": [*({"key": key, "sql": SQL} for key in parallel), {"key": "sink", "sql": SQL, "needs": parallel}],
    }


def sibling_key(index: int) -> str:
    return f"p{index:05d}"


def diamond(name: str, width: int) -> dict[str, Any]:
    """`root` -> width siblings -> `sink`: one fan-out event, then a fan-in of `width` events."""
    middle = [sibling_key(i) for i in range(width)]
    return {
        "name": name,
        "jobs": [
            {"key": "root", "sql": SQL},
            *({"key": key, "sql": SQL, "needs": ["root"]} for key in middle),
            {"key": "sink", "sql": SQL, "needs": middle},
        ],
    }


def build(data: dict[str, Any]) -> Manifest:
    """Validate as the handlers do (the same parser, minus the YAML step)."""
    return parse_manifest(data, where=f"benchmarks:{data['name']}", base_dir=Path.cwd())


def write_yaml(data: dict[str, Any], directory: Path) -> Path:
    """`<directory>/<name>.yaml`, for runs started through start_manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, width=1_000_000), encoding="utf-8")
    return path
