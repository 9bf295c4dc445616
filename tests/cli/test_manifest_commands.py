"""`baton manifest validate` and `baton manifest graph`: no cloud needed, except to colour by a run."""

from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path

import pytest
import yaml

from baton.domain.records import Completion
from tests.cli.conftest import Core, assert_one_line_error, invoke
from tests.conftest import REPO

ELT_DAILY = REPO / "manifests" / "elt_daily.yaml"
MERMAID_EDGE = re.compile(r"^\s*(\w+) --> (\w+)\s*$")
MERMAID_NODE = re.compile(r'^\s*(\w+)\["([^"]*)"\]\s*$')
DOT_EDGE = re.compile(r'^\s*"([^"]+)" -> "([^"]+)";\s*$')
DOT_NODE = re.compile(r'^\s*"([^"]+)" \[label="([^"]*)"(.*)\];\s*$')

BROKEN = """
name: broken
jobs:
  - key: a
    sql: SELECT 1
    needs: [nowhere]
  - key: B
    sql: SELECT 2
    colour: blue
"""


def yaml_edges(path: Path) -> set[tuple[str, str]]:
    """The DAG as the YAML itself states it: needs -> job."""
    data = yaml.safe_load(path.read_text())
    return {(upstream, job["key"]) for job in data["jobs"] for upstream in job.get("needs", [])}


def yaml_layers(path: Path) -> dict[str, str | None]:
    data = yaml.safe_load(path.read_text())
    return {job["key"]: job.get("labels", {}).get("layer") for job in data["jobs"]}


def parse(text: str, edge: re.Pattern[str], node: re.Pattern[str]) -> tuple[set[tuple[str, str]], dict[str, str]]:
    edges = {(m[1], m[2]) for m in map(edge.match, text.splitlines()) if m}
    nodes = {m[1]: m[2] for m in map(node.match, text.splitlines()) if m}
    return edges, nodes


# --- validate ----------------------------------------------------------------------------------------------


def test_validate_reports_ok_for_every_manifest_in_the_folder(manifests_dir: Path) -> None:
    result = invoke("manifest", "validate")
    assert result.exit_code == 0, result.output
    names = sorted(p.stem for p in manifests_dir.glob("*.yaml"))
    ok_lines = [line for line in result.stdout.splitlines() if line.startswith("OK  ")]
    assert len(ok_lines) == len(names) and {"checked", "elt_daily"} <= set(names)
    for name in names:
        assert any(f"({name} @ " in line for line in ok_lines), result.stdout


def test_validate_prints_every_problem_and_exits_1(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    result = invoke("manifest", "validate", str(ELT_DAILY), str(broken))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("OK  ") and "elt_daily" in lines[0]
    problems = [line for line in lines[1:] if line.startswith(f"{broken}: ")]
    # The schema's problem and the rules' problems in one pass: a bad field does not hide the rest.
    assert [line.removeprefix(f"{broken}: ").split(" (")[0] for line in problems] == [
        "job 'B': colour: unknown field",
        "job 'a': needs unknown job 'nowhere'",
        "job 'B': key must match ^[a-z][a-z0-9_]{0,62}$",
    ]
    assert "1 of 2 manifest(s) invalid" in result.stderr


def test_validate_finds_semantic_problems_one_line_each(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN.replace("    colour: blue\n", ""))
    result = invoke("manifest", "validate", str(broken))
    assert result.exit_code == 1
    problems = result.stdout.splitlines()
    assert any("job 'a': needs unknown job 'nowhere'" in line for line in problems), problems
    assert any("job 'B': key must match" in line for line in problems), problems
    assert all(line.startswith(f"{broken}: ") for line in problems)


def test_validate_rejects_a_file_whose_name_differs_from_its_manifest(tmp_path: Path) -> None:
    shutil.copytree(ELT_DAILY.parent / "sql", tmp_path / "sql")
    renamed = tmp_path / "daily.yaml"
    renamed.write_text(ELT_DAILY.read_text())
    result = invoke("manifest", "validate", str(renamed))
    assert result.exit_code == 1
    assert result.stdout.strip() == f"{renamed}: name 'elt_daily' differs from the file name 'daily'"


def test_validate_an_unknown_name_is_a_problem_not_a_crash(manifests_dir: Path) -> None:
    result = invoke("manifest", "validate", "elt_daily", "no_such_manifest")
    assert result.exit_code == 1
    assert "no_such_manifest: not found in" in result.stdout
    assert "Traceback" not in result.output


# --- graph -------------------------------------------------------------------------------------------------


def test_mermaid_graph_of_elt_daily_has_exactly_the_yaml_edges_and_layers() -> None:
    result = invoke("manifest", "graph", str(ELT_DAILY))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("flowchart LR\n")
    edges, nodes = parse(result.stdout, MERMAID_EDGE, MERMAID_NODE)
    assert edges == yaml_edges(ELT_DAILY)
    layers = yaml_layers(ELT_DAILY)
    assert set(nodes) == set(layers)
    for key, layer in layers.items():
        assert nodes[key] == (key if layer is None else f"{key}<br/>{layer}")


def test_dot_graph_of_elt_daily_has_exactly_the_yaml_edges_and_layers(manifests_dir: Path) -> None:
    result = invoke("manifest", "graph", "elt_daily", "--format", "dot")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith('digraph "elt_daily" {')
    edges, nodes = parse(result.stdout, DOT_EDGE, DOT_NODE)
    assert edges == yaml_edges(ELT_DAILY)
    assert {key: label.split("\\n")[1] for key, label in nodes.items()} == yaml_layers(ELT_DAILY)


def test_graph_of_an_unknown_manifest_is_one_line(manifests_dir: Path) -> None:
    assert_one_line_error(invoke("manifest", "graph", "nope"), "manifest 'nope' not found")


def test_graph_of_an_invalid_manifest_is_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN.replace("    colour: blue\n", ""))
    line = assert_one_line_error(invoke("manifest", "graph", str(broken)), "needs unknown job 'nowhere'")
    assert "key must match" in line  # every problem, joined on the one line


def test_output_without_graphviz_says_how_to_get_the_text(no_graphviz: None, tmp_path: Path) -> None:
    result = invoke("manifest", "graph", str(ELT_DAILY), "--output", str(tmp_path / "g.png"))
    assert_one_line_error(result, "Graphviz 'dot' is not installed", "--format dot")
    assert not (tmp_path / "g.png").exists()


def test_output_renders_through_dot_with_the_format_of_the_suffix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in `dot` records its arguments and input, as the real one would render them."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_dot = bin_dir / "dot"
    fake_dot.write_text('#!/bin/sh\necho "$@" > "$(dirname "$0")/args"\ncat > "$3"\n')
    fake_dot.chmod(fake_dot.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")  # found first, real one or not
    output = tmp_path / "graph.svg"
    result = invoke("manifest", "graph", str(ELT_DAILY), "-o", str(output))
    assert result.exit_code == 0, result.output
    assert (bin_dir / "args").read_text().split() == ["-Tsvg", "-o", str(output)]
    edges, _ = parse(output.read_text(), DOT_EDGE, DOT_NODE)
    assert edges == yaml_edges(ELT_DAILY)


def test_output_with_an_unknown_suffix_is_refused(tmp_path: Path) -> None:
    assert_one_line_error(invoke("manifest", "graph", str(ELT_DAILY), "-o", str(tmp_path / "g.jpg")), ".png or .svg")


@pytest.mark.integration
def test_graph_coloured_by_a_run_marks_each_job_with_its_status(core: Core) -> None:
    run = core.orchestrator.start("elt_daily", {"run_date": "2026-11-27"})
    core.orchestrator.complete(Completion(run.run_id, "land_raw", 1, f"baton_test_{run.run_id}_land_raw_1"))
    result = invoke("manifest", "graph", "elt_daily", "--run", run.run_id)
    assert result.exit_code == 0, result.output
    classes = dict(re.findall(r"^\s*class (\S+) (\w+)$", result.stdout, re.MULTILINE))
    by_job = {job: status for jobs, status in classes.items() for job in jobs.split(",")}
    statuses = {job.job_key: job.status.lower() for job in core.store.list_jobs(run.run_id)}
    assert by_job == statuses
    assert by_job["land_raw"] == "succeeded" and by_job["hist_orders"] == "submitted"
    edges, _ = parse(result.stdout, MERMAID_EDGE, MERMAID_NODE)
    assert edges == yaml_edges(ELT_DAILY)

    dot = invoke("manifest", "graph", "elt_daily", "--run", run.run_id, "--format", "dot").stdout
    _, nodes = parse(dot, DOT_EDGE, DOT_NODE)
    assert 'tooltip="SUCCEEDED"' in dot.split('"land_raw" [', 1)[1].split("\n", 1)[0]
    assert set(nodes) == set(statuses)


@pytest.mark.integration
def test_graph_with_a_run_of_another_manifest_is_refused(core: Core) -> None:
    run = core.orchestrator.start("checked", {"run_date": "2026-11-27"})
    assert_one_line_error(invoke("manifest", "graph", "elt_daily", "--run", run.run_id), "is of manifest 'checked'")


# --- checks in the graph -----------------------------------------------------------------------------------

CHECKED_GRAPH = """
name: shop
jobs:
  - key: customers
    sql: SELECT 1 AS id
    destination: sales.customers
  - key: orders
    needs: [customers]
    sql: SELECT 1 AS customer_id
    destination: sales.orders
    labels: {layer: trusted}
    checks:
      - name: known_customer
        relationships: {column: customer_id, to: sales.customers, field: id}
      - name: id_present
        not_null: customer_id
  - key: report
    needs: [orders]
    sql: SELECT 2
    checks:
      - name: totals_match
        severity: warn
        sql_is_true: (SELECT COUNT(*) FROM sales.orders) >= (SELECT COUNT(*) FROM `sales.customers`)
"""


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    path = tmp_path / "shop.yaml"
    path.write_text(CHECKED_GRAPH)
    return path


def test_text_graph_lists_each_job_with_its_checks_and_what_they_read(shop: Path) -> None:
    result = invoke("manifest", "graph", str(shop), "--format", "text")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "shop: 3 jobs, 3 checks",
        "customers",
        "orders [trusted]  needs: customers",
        "  check known_customer (relationships, error)  reads: customers",
        "  check id_present (not_null, error)",
        "report  needs: orders",
        "  check totals_match (sql_is_true, warn)  reads: customers, orders",
    ]


def test_mermaid_graph_draws_checks_beside_their_jobs(shop: Path) -> None:
    out = invoke("manifest", "graph", str(shop)).stdout
    edges, nodes = parse(out, MERMAID_EDGE, MERMAID_NODE)
    assert edges == {("customers", "orders"), ("orders", "report")}  # checks add no job edges
    assert set(nodes) == {"customers", "orders", "report"}
    checks = dict(re.findall(r'^\s*(check_\d+)\{\{"([^"]+)"\}\}$', out, re.MULTILINE))
    by_name = {label.split("<br/>")[0]: check_id for check_id, label in checks.items()}
    assert checks[by_name["known_customer"]] == "known_customer<br/>relationships"
    attached = set(re.findall(r"^\s*(\w+) -\.- (check_\d+)$", out, re.MULTILINE))
    assert attached == {
        ("orders", by_name["known_customer"]),
        ("orders", by_name["id_present"]),
        ("report", by_name["totals_match"]),
    }
    reads = set(re.findall(r"^\s*(\w+) -\.-> (check_\d+)$", out, re.MULTILINE))
    assert reads == {
        ("customers", by_name["known_customer"]),
        ("customers", by_name["totals_match"]),
        ("orders", by_name["totals_match"]),
    }


def test_dot_graph_draws_checks_beside_their_jobs(shop: Path) -> None:
    out = invoke("manifest", "graph", str(shop), "--format", "dot").stdout
    edges, _ = parse(out, DOT_EDGE, DOT_NODE)
    assert edges == {("customers", "orders"), ("orders", "report")}
    assert '"check orders.known_customer" [label="known_customer\\nrelationships", shape=note' in out
    assert '"orders" -> "check orders.known_customer" [style=dashed, arrowhead=none' in out
    assert '"customers" -> "check orders.known_customer" [style=dotted' in out
    assert '"orders" -> "check report.totals_match" [style=dotted' in out


def test_text_format_cannot_be_rendered_as_an_image(shop: Path, tmp_path: Path) -> None:
    result = invoke("manifest", "graph", str(shop), "--format", "text", "-o", str(tmp_path / "g.png"))
    assert_one_line_error(result, "drop --format text")
