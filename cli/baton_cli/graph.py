"""A manifest's DAG as plain text, Mermaid or Graphviz, with each job's checks, optionally coloured by a run.

Text first: it diffs, pastes into a pull request or a wiki, and needs nothing
installed. Rendering an image is left to Graphviz's `dot` when it is present.
A check is drawn beside its job, with a dotted edge from each other job whose
output it reads (found in its SQL by the rule validation uses).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from baton.domain.records import JobRecord, JobStatus
from baton.domain.specs import JobSpec
from baton.errors import BatonError
from baton.manifests.check_sql import tables_read
from baton.manifests.model import Manifest

LAYER_LABEL = "layer"


class GraphFormat(StrEnum):
    TEXT = "text"
    MERMAID = "mermaid"
    DOT = "dot"


class GraphRenderError(BatonError):
    """Graphviz is missing, the output format is unknown, or `dot` failed."""


@dataclass(frozen=True)
class CheckNode:
    name: str
    kind: str
    severity: str
    reads: tuple[str, ...] = ()  # other jobs whose output the check reads


@dataclass(frozen=True)
class Node:
    key: str
    layer: str | None = None
    status: JobStatus | None = None
    checks: tuple[CheckNode, ...] = ()
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Graph:
    name: str
    nodes: tuple[Node, ...]
    edges: tuple[tuple[str, str], ...]  # (upstream, dependent)


def _graph(name: str, specs: Iterable[JobSpec], statuses: Mapping[str, JobStatus] | None) -> Graph:
    specs = list(specs)
    writers = {spec.destination: spec.key for spec in specs if spec.destination is not None}

    def check_nodes(spec: JobSpec) -> tuple[CheckNode, ...]:
        return tuple(
            CheckNode(
                check.name,
                check.kind,
                str(check.severity),
                tuple(writers[table] for table in tables_read(check.sql, writers) if writers[table] != spec.key),
            )
            for check in spec.checks
        )

    nodes = tuple(
        Node(spec.key, spec.labels.get(LAYER_LABEL), (statuses or {}).get(spec.key), check_nodes(spec), spec.needs)
        for spec in specs
    )
    edges = tuple((upstream, spec.key) for spec in specs for upstream in spec.needs)
    return Graph(name, nodes, edges)


def manifest_graph(manifest: Manifest) -> Graph:
    return _graph(manifest.name, manifest.jobs, None)


def run_graph(name: str, jobs: Iterable[JobRecord]) -> Graph:
    """The run's own snapshot of the DAG (it may differ from today's manifest), coloured by status."""
    jobs = list(jobs)
    return _graph(name, (job.spec for job in jobs), {job.job_key: job.status for job in jobs})


# Fill colours per status, shared by both formats so a picture reads the same either way.
STATUS_FILL: dict[JobStatus, str] = {
    JobStatus.PENDING: "#eeeeee",
    JobStatus.QUEUED: "#e2e3f3",
    JobStatus.READY: "#cfe2ff",
    JobStatus.SUBMITTED: "#9ec5fe",
    JobStatus.CHECKING: "#9eeaf9",
    JobStatus.SUCCEEDED: "#a3cfbb",
    JobStatus.FAILED: "#f1aeb5",
    JobStatus.SKIPPED: "#ffe69c",
    JobStatus.CANCELLED: "#d3d3d4",
}


def _fill(status: JobStatus) -> str:
    return STATUS_FILL.get(status, "#ffffff")


# Words Mermaid's flowchart parser treats as syntax; such a key gets a suffixed node id.
_MERMAID_RESERVED = {"end", "graph", "subgraph", "flowchart", "style", "class", "classdef", "click", "linkstyle", "direction"}


def _mermaid_id(key: str) -> str:
    return f"{key}_" if key.lower() in _MERMAID_RESERVED else key


def _check_ids(graph: Graph) -> dict[tuple[str, str], str]:
    """Mermaid ids of the check nodes: `check_N`, never one of the job keys."""
    keys = {node.key for node in graph.nodes}
    ids: dict[tuple[str, str], str] = {}
    number = 0
    for node in graph.nodes:
        for check in node.checks:
            number += 1
            while f"check_{number}" in keys:
                number += 1
            ids[(node.key, check.name)] = f"check_{number}"
    return ids


def to_mermaid(graph: Graph) -> str:
    lines = ["flowchart LR"]
    for node in graph.nodes:
        label = node.key if node.layer is None else f"{node.key}<br/>{node.layer}"
        lines.append(f'  {_mermaid_id(node.key)}["{label}"]')
    lines += [f"  {_mermaid_id(upstream)} --> {_mermaid_id(dependent)}" for upstream, dependent in graph.edges]
    check_ids = _check_ids(graph)
    for node in graph.nodes:
        for check in node.checks:
            check_id = check_ids[(node.key, check.name)]
            lines.append(f'  {check_id}{{{{"{check.name}<br/>{check.kind}"}}}}')
            lines.append(f"  {_mermaid_id(node.key)} -.- {check_id}")
            lines += [f"  {_mermaid_id(read)} -.-> {check_id}" for read in check.reads]
    if check_ids:
        lines.append("  classDef check fill:#fff8e1,stroke:#b58900")
        lines.append(f"  class {','.join(check_ids.values())} check")
    by_status: dict[JobStatus, list[str]] = {}
    for node in graph.nodes:
        if node.status is not None:
            by_status.setdefault(node.status, []).append(_mermaid_id(node.key))
    for status, ids in by_status.items():
        lines.append(f"  classDef {status.lower()} fill:{_fill(status)},stroke:#555")
        lines.append(f"  class {','.join(ids)} {status.lower()}")
    return "\n".join(lines) + "\n"


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graph: Graph) -> str:
    lines = [
        f"digraph {_dot_quote(graph.name)} {{",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded", fontname="Helvetica"];',
    ]
    for node in graph.nodes:
        label = node.key if node.layer is None else f"{node.key}\\n{node.layer}"
        attributes = [f'label="{label}"']
        if node.status is not None:
            attributes += ['style="rounded,filled"', f'fillcolor="{_fill(node.status)}"', f'tooltip="{node.status}"']
        lines.append(f"  {_dot_quote(node.key)} [{', '.join(attributes)}];")
    lines += [f"  {_dot_quote(upstream)} -> {_dot_quote(dependent)};" for upstream, dependent in graph.edges]
    for node in graph.nodes:
        for check in node.checks:
            check_id = _dot_quote(f"check {node.key}.{check.name}")  # a space: never a job key
            lines.append(f'  {check_id} [label="{check.name}\\n{check.kind}", shape=note, style="filled", fillcolor="#fff8e1"];')
            lines.append(f'  {_dot_quote(node.key)} -> {check_id} [style=dashed, arrowhead=none, tooltip="check of"];')
            lines += [f'  {_dot_quote(read)} -> {check_id} [style=dotted, tooltip="read by"];' for read in check.reads]
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_plain(graph: Graph) -> str:
    """One line per job (layer, needs), one per check (kind, severity, the other jobs it reads), in manifest order."""
    lines = [f"{graph.name}: {len(graph.nodes)} jobs, {sum(len(node.checks) for node in graph.nodes)} checks"]
    for node in graph.nodes:
        line = node.key + (f" [{node.layer}]" if node.layer else "")
        if node.status is not None:
            line += f" {node.status}"
        if node.needs:
            line += f"  needs: {', '.join(node.needs)}"
        lines.append(line)
        for check in node.checks:
            reads = f"  reads: {', '.join(check.reads)}" if check.reads else ""
            lines.append(f"  check {check.name} ({check.kind}, {check.severity}){reads}")
    return "\n".join(lines) + "\n"


def to_text(graph: Graph, graph_format: GraphFormat) -> str:
    if graph_format == GraphFormat.TEXT:
        return to_plain(graph)
    return to_mermaid(graph) if graph_format == GraphFormat.MERMAID else to_dot(graph)


IMAGE_FORMATS = ("png", "svg")


def render_image(graph: Graph, output: Path, timeout_s: float = 60.0) -> None:
    """Write a PNG or SVG (by the file's suffix) with Graphviz's `dot`."""
    image_format = output.suffix.lower().lstrip(".")
    if image_format not in IMAGE_FORMATS:
        raise GraphRenderError(f"--output must end in .png or .svg, not '{output.name}'")
    dot = shutil.which("dot")
    if dot is None:
        raise GraphRenderError(
            "Graphviz 'dot' is not installed (e.g. `apt-get install graphviz`); "
            "print the text instead with `baton manifest graph NAME --format dot > graph.dot`"
        )
    try:
        completed = subprocess.run(
            [dot, f"-T{image_format}", "-o", str(output)],
            input=to_dot(graph).encode(),
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise GraphRenderError(f"dot did not finish within {timeout_s:.0f} s") from None
    if completed.returncode != 0:
        detail = " ".join(completed.stderr.decode(errors="replace").split()) or f"exit status {completed.returncode}"
        raise GraphRenderError(f"dot failed: {detail}")
