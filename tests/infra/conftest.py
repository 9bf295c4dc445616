"""Synthesize the stacks once per session: importing the provider bindings alone takes seconds."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# jsii starts its Node runtime at the first import of cdktf; these must be set before that.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_RUNTIME_PACKAGE_CACHE_ROOT", str(REPO / ".cache" / "jsii"))
os.environ.setdefault("CHECKPOINT_DISABLE", "1")

SCHEDULED_MANIFEST = """\
name: nightly_sales
description: a scheduled manifest that writes two datasets
schedule: "30 2 * * *"
time_zone: Europe/Berlin
jobs:
  - key: staged
    sql: SELECT 1 AS x
    destination: staging.sales
  - key: published
    needs: [staged]
    sql: SELECT x FROM staging.sales
    destination: analytics.sales
"""
UNSCHEDULED_MANIFEST = """\
name: adhoc_backfill
jobs:
  - key: only
    sql: SELECT 2 AS y
"""

Synthesize = Callable[..., Path]


@pytest.fixture(scope="session")
def synthesize(tmp_path_factory: pytest.TempPathFactory) -> Synthesize:
    """`synthesize(name, handlers_dir=..., manifests_dir=...)` -> outdir: an in-process `cdktf synth` into a fresh directory."""
    from cdk.synth import synth

    def run(name: str, handlers_dir: Path | None = None, manifests_dir: Path | None = None) -> Path:
        return synth(tmp_path_factory.mktemp(name), handlers_dir, manifests_dir=manifests_dir)

    return run


@pytest.fixture(scope="session")
def synth_dir(synthesize: Synthesize) -> Path:
    """Both environments synthesized from the repository as it is."""
    return synthesize("synth")


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
