"""dbt-style selection: which jobs a run takes, and what the run does with the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from baton.errors import InvalidSelection
from baton.manifests.loading import parse_manifest
from baton.manifests.model import Manifest
from baton.manifests.selection import select
from tests.unit.test_engine import World, manifest_of

#   land -> hist_a -> cons -> ev
#        -> hist_b ->
EDGES = {"land": [], "hist_a": ["land"], "hist_b": ["land"], "cons": ["hist_a", "hist_b"], "ev": ["cons"]}
LAYERS = {"land": "landing", "hist_a": "history", "hist_b": "history", "cons": "consume", "ev": "events"}


def manifest(tmp_path: Path) -> Manifest:
    jobs = [{"key": k, "sql": "SELECT 1", "needs": v, "labels": {"layer": LAYERS[k]}} for k, v in EDGES.items()]
    return parse_manifest({"name": "m", "jobs": jobs}, "m.yaml", tmp_path)


def keys(tmp_path: Path, spec: str | None, exclude: str | None = None) -> list[str]:
    return [job.key for job in select(manifest(tmp_path), spec, exclude).jobs]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("cons", ["cons"]),
        ("+cons", ["land", "hist_a", "hist_b", "cons"]),
        ("cons+", ["cons", "ev"]),
        ("+cons+", ["land", "hist_a", "hist_b", "cons", "ev"]),
        ("1+cons", ["hist_a", "hist_b", "cons"]),
        ("land+1", ["land", "hist_a", "hist_b"]),
        ("hist_a ev", ["hist_a", "ev"]),  # union
        ("+cons,label:layer=history", ["hist_a", "hist_b"]),  # intersection
        ("label:layer=history+", ["hist_a", "hist_b", "cons", "ev"]),
        (None, ["land", "hist_a", "hist_b", "cons", "ev"]),
    ],
)
def test_graph_operators_select_like_dbt(tmp_path: Path, spec: str | None, expected: list[str]) -> None:
    assert keys(tmp_path, spec) == expected


def test_exclude_removes_and_needs_narrow_to_what_runs(tmp_path: Path) -> None:
    assert keys(tmp_path, "+cons+", "land ev") == ["hist_a", "hist_b", "cons"]
    selected = {job.key: job.needs for job in select(manifest(tmp_path), "cons+").jobs}
    assert selected == {"cons": (), "ev": ("cons",)}, "an unselected upstream counts as done"
    assert select(manifest(tmp_path), "cons").version == manifest(tmp_path).version, "the snapshot keeps the manifest's version"


@pytest.mark.parametrize(
    ("spec", "exclude", "message"),
    [
        ("nope", None, "--select 'nope': no job matches 'nope'"),
        ("label:layer=gold", None, "no job matches 'label:layer=gold'"),
        ("Cons!", None, "--select 'Cons!' is not a job key"),
        ("cons", "cons", "the selection leaves no job to run"),
    ],
)
def test_a_bad_selection_says_what_is_wrong(tmp_path: Path, spec: str, exclude: str | None, message: str) -> None:
    with pytest.raises(InvalidSelection, match=message.replace("(", r"\(").replace("+", r"\+")):
        select(manifest(tmp_path), spec, exclude)


def test_a_run_of_a_selection_runs_only_it_and_succeeds(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of(EDGES))
    run = world.orchestrator.start("m", {}, select="cons+")
    assert run.total_jobs == 2 and world.submitter.submitted_keys() == ["cons"]
    world.finish(run.run_id, "cons")
    world.finish(run.run_id, "ev")
    assert world.store.runs[run.run_id].status.value == "SUCCEEDED"
    assert {key for (run_id, key) in world.store.jobs if run_id == run.run_id} == {"cons", "ev"}


def test_a_bad_selection_starts_nothing(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of(EDGES))
    with pytest.raises(InvalidSelection):
        world.orchestrator.start("m", {}, select="nope")
    assert world.store.runs == {} and world.submitter.requests == []
