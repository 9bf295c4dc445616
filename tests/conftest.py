"""Session fixtures: the real emulators, started once per test session and stopped at its end."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PROJECT = "baton-local"
INSTANCE = "baton-test"

# jsii starts its Node runtime at the first import of cdktf; these must be set before that.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_RUNTIME_PACKAGE_CACHE_ROOT", str(REPO / ".cache" / "jsii"))
os.environ.setdefault("CHECKPOINT_DISABLE", "1")

Synthesize = Callable[..., Path]

# Handlers read these; keep tests from inheriting a developer's real settings.
_ISOLATED_VARS = [name for name in os.environ if name.startswith("BATON_")]


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ISOLATED_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def supervisor() -> Iterator[object]:
    from devstack.processes import ProcessSupervisor, reap_orphans

    # Children of an earlier session that was killed outright are stopped first.
    reap_orphans(REPO / ".devstack")
    work_dir = REPO / ".devstack" / f"test-{os.getpid()}"
    work_dir.mkdir(parents=True, exist_ok=True)
    with ProcessSupervisor(work_dir=work_dir) as sup:
        yield sup


@pytest.fixture(scope="session")
def spanner_emulator(supervisor: object) -> Iterator[object]:
    from devstack.emulators import SpannerEmulator, create_spanner_database, emulator_env

    emulator = SpannerEmulator.start(supervisor)  # type: ignore[arg-type]
    create_spanner_database(emulator.host, project=PROJECT, instance=INSTANCE, database="bootstrap")
    with emulator_env(emulator.env()):
        yield emulator


@pytest.fixture
def spanner_database(spanner_emulator: object) -> object:
    """A fresh, migrated database per test: no test sees another's runs."""
    from google.cloud import spanner

    from baton.adapters.spanner_migrations import load_migrations, migrate

    database = spanner.Client(project=PROJECT).instance(INSTANCE).database(f"t{secrets.token_hex(6)}")
    database.create().result(120)
    migrate(database, load_migrations())
    return database


@pytest.fixture(scope="session")
def synthesize(tmp_path_factory: pytest.TempPathFactory) -> Synthesize:
    """`synthesize(name, handlers_dir=..., manifests_dir=...)` -> outdir: an in-process `cdktf synth`."""
    from cdk.synth import synth

    def run(name: str, handlers_dir: Path | None = None, manifests_dir: Path | None = None) -> Path:
        return synth(tmp_path_factory.mktemp(name), handlers_dir, manifests_dir=manifests_dir)

    return run


@pytest.fixture(scope="session")
def synth_dir(synthesize: Synthesize) -> Path:
    """Both environments synthesized once from the repository as it is: infra tests and the local stack share it."""
    return synthesize("synth")
