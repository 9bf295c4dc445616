"""`baton infra diff` on a throw-away git repository made from this one: what a reviewer sees before a deploy."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from baton_cli.infra_diff import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_STATEFUL_LOSS,
    ResourceChange,
    diff_stack,
    diff_synth_dirs,
    export_revision,
    format_diff,
    main,
    project_python,
    synthesize,
)
from tests.infra.conftest import REPO
from tests.infra.terraform_json import ENVIRONMENTS

pytestmark = pytest.mark.infra


def _git(repo: Path, *args: str) -> str:
    command = ["git", "-C", str(repo), "-c", "user.name=test", "-c", "user.email=test@example.com", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def scratch_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This repository's files as they are now (tracked and new, not ignored), committed into a repository of their own."""
    repo = tmp_path_factory.mktemp("repo")
    files = _git(REPO, "ls-files", "--cached", "--others", "--exclude-standard", "-z").split("\0")
    for name in filter(None, files):
        source = REPO / name
        if source.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "base")
    return repo


@pytest.fixture(scope="module")
def head_synth(scratch_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("head")
    return synthesize(export_revision(scratch_repo, "HEAD", base / "src"), base / "out", project_python(REPO))


@pytest.fixture
def working_tree(scratch_repo: Path) -> Iterator[Path]:
    yield scratch_repo
    _git(scratch_repo, "checkout", "-q", "--", ".")  # each test edits from the committed base


def test_a_handler_change_lists_only_the_archive_and_the_functions(working_tree: Path, head_synth: Path, tmp_path: Path) -> None:
    main_py = working_tree / "handlers" / "main.py"
    main_py.write_text(main_py.read_text() + "\n# a hot-swapped line\n")
    report = diff_synth_dirs(head_synth, synthesize(working_tree, tmp_path / "out", project_python(REPO)))

    assert report.exit_code == EXIT_OK and not report.state_losses
    assert set(report.by_stack()) == {f"baton-{env}-handlers" for env in ENVIRONMENTS}
    for env in ENVIRONMENTS:
        changes = report.by_stack()[f"baton-{env}-handlers"]
        assert {c.address.split(".")[0] for c in changes} == {"google_storage_bucket_object", "google_cloudfunctions2_function"}
        assert all(c.action == "change" and not c.is_iam for c in changes)
        functions = [c for c in changes if c.resource_type == "google_cloudfunctions2_function"]
        assert len(functions) == 3
        assert all(c.attributes == ("build_config.source.storage_source.object",) for c in functions), functions
    text = format_diff(report)
    assert "STOP" not in text and "baton-dev-platform" not in text


def test_a_dataset_location_change_is_a_replacement_and_exits_non_zero(
    working_tree: Path, head_synth: Path, tmp_path: Path
) -> None:
    config = working_tree / "cdk" / "config.py"
    text, count = re.subn(r'bigquery_location: str = "US"', 'bigquery_location: str = "EU"', config.read_text())
    assert count == 1, "the functions' BigQuery location default moved; update this test"
    config.write_text(text)

    report = diff_synth_dirs(head_synth, synthesize(working_tree, tmp_path / "out", project_python(REPO)))
    assert report.exit_code == EXIT_STATEFUL_LOSS
    out = format_diff(report)
    assert re.search(r"-/\+ google_bigquery_dataset\.dataset_landing: location .*REPLACED \(location", out), out
    assert "STOP: 12 stateful resource(s) would be destroyed or replaced" in out  # 6 datasets in each environment
    assert "~ google_cloudfunctions2_function." in out  # BATON_BQ_LOCATION follows, in place


def test_stateful_changes_are_judged_by_their_force_new_attributes() -> None:
    database: dict[str, Any] = {"name": "baton", "ddl": ["CREATE TABLE A (X INT64) PRIMARY KEY (X)"], "deletion_protection": True}
    appended = {**database, "ddl": [*database["ddl"], "CREATE INDEX I ON A(X)"]}
    edited = {**database, "ddl": ["CREATE TABLE A (Y INT64) PRIMARY KEY (Y)"]}
    topic = {"name": "t", "message_retention_duration": "600s"}

    def change(before: dict[str, Any], after: dict[str, Any], kind: str = "google_spanner_database") -> ResourceChange:
        (one,) = diff_stack("s", {"resource": {kind: {"r": before}}}, {"resource": {kind: {"r": after}}})
        return one

    assert not change(database, appended).loses_state  # appended DDL is a schema update
    assert change(database, edited).replaced_by == ("ddl",)
    assert change(database, {**database, "name": "baton2"}).replaced_by == ("name",)
    assert not change(database, {**database, "deletion_protection": False}).loses_state
    assert not change(topic, {**topic, "message_retention_duration": "900s"}, "google_pubsub_topic").loses_state
    assert change(topic, {**topic, "name": "u"}, "google_pubsub_topic").loses_state
    (removed,) = diff_stack("s", {"resource": {"google_pubsub_topic": {"r": topic}}}, {"resource": {}})
    assert removed.action == "remove" and removed.loses_state
    (grant,) = diff_stack("s", {}, {"resource": {"google_pubsub_topic_iam_member": {"g": {"role": "r"}}}})
    assert grant.is_iam and not grant.is_stateful


def test_the_command_reports_a_revision_it_cannot_read(working_tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-revision", "--repo", str(working_tree)]) == EXIT_ERROR
    assert "no-such-revision" in capsys.readouterr().err


def test_baton_infra_diff_is_the_same_command(working_tree: Path) -> None:
    from typer.testing import CliRunner

    from baton_cli.app import app

    result = CliRunner().invoke(app, ["infra", "diff", "no-such-revision", "--repo", str(working_tree)])
    assert result.exit_code == EXIT_ERROR
    assert "no-such-revision" in result.output
