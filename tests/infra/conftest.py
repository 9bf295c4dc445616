"""Synthesize the stacks once per session: importing the provider bindings alone takes seconds."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


SCHEDULED_MANIFEST = """\
name: nightly_sales
description: a scheduled manifest that writes two of the declared datasets
schedule: "30 2 * * *"
time_zone: Europe/Berlin
jobs:
  - key: staged
    sql: SELECT 1 AS x
    destination: trusted.sales
  - key: published
    needs: [staged]
    sql: SELECT x FROM trusted.sales
    destination: consume.sales
"""
UNSCHEDULED_MANIFEST = """\
name: adhoc_backfill
jobs:
  - key: only
    sql: SELECT 2 AS y
"""

Synthesize = Callable[..., Path]


@pytest.fixture(scope="session")
def handlers_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of handlers/ that tests may edit; the real tree is never touched."""
    target = tmp_path_factory.mktemp("handlers-copy") / "handlers"
    shutil.copytree(REPO / "handlers", target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    return target


@pytest.fixture(scope="session")
def example_manifests_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Manifests with and without a schedule, so schedule and dataset wiring is exercised whatever manifests/ holds."""
    directory = tmp_path_factory.mktemp("manifests") / "manifests"
    directory.mkdir()
    (directory / "nightly_sales.yaml").write_text(SCHEDULED_MANIFEST)
    (directory / "adhoc_backfill.yaml").write_text(UNSCHEDULED_MANIFEST)
    return directory


@pytest.fixture(scope="session")
def example_synth_dir(synthesize: Synthesize, example_manifests_dir: Path) -> Path:
    return synthesize("synth-examples", manifests_dir=example_manifests_dir)
