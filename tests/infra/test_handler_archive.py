"""The deployed archive holds everything the functions load at run time, manifests included."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import REPO
from tests.infra.terraform_json import load, only, stack_path

pytestmark = pytest.mark.infra

# Run inside the unpacked archive: the same calls bootstrap.build() makes to give start_manifest its manifests.
LOAD_EVERY_MANIFEST = """
import json, baton
from baton.config import Settings
from baton.manifests.loading import ManifestRepository
settings = Settings.from_env({"BATON_ENV": "dev", "BATON_PROJECT": "baton-dev-project"})
repository = ManifestRepository(settings.manifests_dir)
loaded = {name: repository.load(name).version for name in repository.names()}
print(json.dumps({"baton": baton.__file__, "manifests_dir": str(settings.manifests_dir), "loaded": loaded}))
"""


def deployed_archive(synth_dir: Path, env: str = "dev") -> tuple[str, Path]:
    """The object name and the file Terraform uploads, as the handlers stack declares them."""
    stack = f"baton-{env}-handlers"
    _, obj = only(load(synth_dir, stack), "google_storage_bucket_object")
    return obj["name"], stack_path(synth_dir, stack).parent / obj["source"]


def unpack(synth_dir: Path, target: Path) -> Path:
    _, archive = deployed_archive(synth_dir)
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(target)
    return target


def load_manifests_from(unpacked: Path) -> dict[str, Any]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("BATON_")}
    env["PYTHONPATH"] = str(unpacked)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", LOAD_EVERY_MANIFEST],
        cwd=unpacked,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


@pytest.mark.parametrize("which", ["repository", "examples"])
def test_start_manifest_loads_every_manifest_from_the_archive(
    synth_dir: Path, example_synth_dir: Path, example_manifests_dir: Path, tmp_path: Path, which: str
) -> None:
    synthesized, manifests_dir = (
        (synth_dir, REPO / "manifests") if which == "repository" else (example_synth_dir, example_manifests_dir)
    )
    unpacked = unpack(synthesized, tmp_path / "site")
    report = load_manifests_from(unpacked)
    # The archive's own code and manifests, not the repository's.
    assert Path(report["baton"]).is_relative_to(unpacked)
    assert Path(report["manifests_dir"]) == unpacked / "manifests"
    expected = sorted(path.stem for path in manifests_dir.glob("*.y*ml"))
    assert sorted(report["loaded"]) == expected
    if which == "examples":
        assert expected == ["adhoc_backfill", "nightly_sales"]


def test_archive_holds_the_runtime_and_nothing_else(synth_dir: Path) -> None:
    name, archive = deployed_archive(synth_dir)
    with zipfile.ZipFile(archive) as zipped:
        entries = zipped.namelist()
        infos = zipped.infolist()
    assert {"main.py", "requirements.txt", "baton/__init__.py", "baton/config.py"} <= set(entries)
    assert entries == sorted(entries)
    assert not [e for e in entries if "__pycache__" in e or e.endswith(".pyc")]
    assert not [e for e in entries if "cli" in e.split("/")[-1] or e.startswith("baton_cli")], "the operator CLI is not deployed"
    assert {e for e in entries if e.startswith("manifests/")} == {
        "manifests/" + p.relative_to(REPO / "manifests").as_posix() for p in (REPO / "manifests").rglob("*") if p.is_file()
    }
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert name == archive.name
    assert name.startswith("handlers-") and name.endswith(".zip")


def test_archive_imports_no_cli_library(synth_dir: Path) -> None:
    """The CLI's libraries (typer, rich) are not in requirements.txt; a module importing them would fail at cold start."""
    _, archive = deployed_archive(synth_dir)
    with zipfile.ZipFile(archive) as zipped:
        sources = {name: zipped.read(name).decode() for name in zipped.namelist() if name.endswith(".py")}
    assert "baton/domain/records.py" in sources, "the layered package is deployed"
    imported = {
        node.names[0].name.split(".")[0] if isinstance(node, ast.Import) else (node.module or "").split(".")[0]
        for source in sources.values()
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
    }
    assert not imported & {"typer", "rich", "baton_cli"}, imported & {"typer", "rich", "baton_cli"}


def test_archive_name_follows_content(tmp_path: Path, handlers_copy: Path, example_manifests_dir: Path) -> None:
    from cdk.archive import build_archive

    first = build_archive(handlers_copy, example_manifests_dir, tmp_path / "a")
    again = build_archive(handlers_copy, example_manifests_dir, tmp_path / "b")
    assert first.object_name == again.object_name
    assert first.path.read_bytes() == again.path.read_bytes()
    other_manifests = tmp_path / "manifests"
    other_manifests.mkdir()
    (other_manifests / "nightly_sales.yaml").write_text((example_manifests_dir / "nightly_sales.yaml").read_text() + "# edited\n")
    changed = build_archive(handlers_copy, other_manifests, tmp_path / "c")
    assert changed.object_name != first.object_name


def test_archive_refuses_handlers_without_an_entry_module(tmp_path: Path) -> None:
    from cdk.archive import build_archive

    (tmp_path / "handlers" / "baton").mkdir(parents=True)
    (tmp_path / "handlers" / "requirements.txt").write_text("")
    with pytest.raises(FileNotFoundError, match=r"main\.py"):
        build_archive(tmp_path / "handlers", tmp_path / "manifests", tmp_path / "out")
