"""The CLI through typer's CliRunner, over the real Spanner emulator with a recording BigQuery submitter."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from baton.adapters.spanner_store import SpannerRunStore
from baton.config import Settings
from baton.manifests.loading import ManifestRepository
from baton.service.orchestrator import Orchestrator
from baton_cli import app as cli
from baton_cli import root
from tests.conftest import INSTANCE, PROJECT, REPO
from tests.fakes import RecordingSubmitter

ENVIRONMENT = "test"

# A manifest with a data check, beside the repository's own, so `status` has check results to show.
CHECKED_MANIFEST = """
name: checked
params:
  run_date: {type: DATE}
  full_refresh: {type: BOOL, default: false}
jobs:
  - key: load
    sql: SELECT 1 AS id
    destination: landing.items
    labels: {layer: landing}
    checks:
      - name: id_not_null
        not_null: id
  - key: report
    needs: [load]
    sql: SELECT 2
    labels: {layer: consume}
"""


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run `baton ARGS`; wide columns so tables are not wrapped into unreadable test output."""
    return CliRunner().invoke(cli.app, list(args), env={"COLUMNS": "250", **(env or {})})


def assert_one_line_error(result: Result, *fragments: str) -> str:
    """A failure the CLI expected: non-zero, no traceback, exactly one `error:` line on stderr."""
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(autouse=True)
def _restored_environment() -> Iterator[None]:
    """--env-file writes into os.environ; put it back as it was after each test."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def _no_running_dev_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    """A `baton dev` running in this checkout must not stand in for the settings a test gives (or leaves out)."""
    monkeypatch.setattr(root, "running_dev_stack", dict)


@pytest.fixture
def baton_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {"BATON_ENV": ENVIRONMENT, "BATON_PROJECT": PROJECT, "BATON_SPANNER_INSTANCE": INSTANCE}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def manifests_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The repository's manifests plus `checked`, in a folder of their own."""
    directory = tmp_path / "manifests"
    shutil.copytree(REPO / "manifests", directory)
    (directory / "checked.yaml").write_text(CHECKED_MANIFEST)
    monkeypatch.setenv("BATON_MANIFESTS_DIR", str(directory))
    return directory


@dataclass
class Core:
    store: SpannerRunStore
    submitter: RecordingSubmitter
    orchestrator: Orchestrator
    settings_seen: list[Settings]


@pytest.fixture
def core(spanner_database: Any, manifests_dir: Path, baton_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Core:
    """The CLI's composition swapped for the emulator's database and a submitter that records."""
    store = SpannerRunStore(spanner_database)
    submitter = RecordingSubmitter()
    orchestrator = Orchestrator(store, submitter, ManifestRepository(manifests_dir), environment=ENVIRONMENT)
    seen: list[Settings] = []

    def build_store(settings: Settings) -> SpannerRunStore:
        seen.append(settings)
        return store

    def build_orchestrator(settings: Settings) -> Orchestrator:
        seen.append(settings)
        return orchestrator

    monkeypatch.setattr(root, "build_store", build_store)
    monkeypatch.setattr(root, "build_orchestrator", build_orchestrator)
    return Core(store, submitter, orchestrator, seen)


@pytest.fixture
def no_graphviz(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A PATH without `dot`, whatever this machine has installed."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("dot") is None
