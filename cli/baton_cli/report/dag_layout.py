"""A layered left-to-right layout of a run's DAG, drawn as inline SVG by the page template.

Plain Python rather than Graphviz: `dot` is an optional system package (absent on many
laptops and on the machines that run the tests), and a page must look the same wherever
it is rendered. Layers are longest paths from the roots; within a layer, nodes are
ordered by the mean position of their upstreams (the barycenter heuristic), which keeps
crossings few for the DAGs manifests hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

NODE_HEIGHT = 40
LAYER_GAP = 56
ROW_GAP = 14
MARGIN = 8
CHAR_WIDTH = 7.6  # of the bold 12 px label font, near enough to size boxes
MIN_NODE_WIDTH = 96
MAX_LABEL_CHARS = 32


@dataclass(frozen=True)
class PlacedNode:
    key: str
    label: str  # the key, shortened with an ellipsis when very long
    x: float
    y: float
    width: float
    height: float = NODE_HEIGHT


@dataclass(frozen=True)
class PlacedEdge:
    upstream: str
    dependent: str
    path: str  # SVG path data: a cubic curve from the upstream's right side to the dependent's left


@dataclass(frozen=True)
class DagLayout:
    nodes: tuple[PlacedNode, ...]
    edges: tuple[PlacedEdge, ...]
    width: float
    height: float


def layers(needs: Mapping[str, Iterable[str]]) -> dict[str, int]:
    """Each job's layer: 0 for roots, else one more than its deepest upstream. Unknown upstreams are ignored."""
    upstreams = {key: {up for up in needs[key] if up in needs} for key in needs}
    dependents: dict[str, list[str]] = {key: [] for key in needs}
    for key, ups in upstreams.items():
        for up in ups:
            dependents[up].append(key)
    waiting = {key: len(ups) for key, ups in upstreams.items()}
    ready = [key for key, count in waiting.items() if count == 0]
    layer: dict[str, int] = {}
    while ready:  # Kahn's order: iterative, so a long chain cannot exhaust the recursion limit
        key = ready.pop()
        layer[key] = 1 + max((layer[up] for up in upstreams[key]), default=-1)
        for dependent in dependents[key]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                ready.append(dependent)
    if len(layer) < len(upstreams):
        raise ValueError(f"dependency cycle among {', '.join(sorted(set(upstreams) - set(layer)))}")
    return layer


def _label(key: str) -> str:
    return key if len(key) <= MAX_LABEL_CHARS else key[: MAX_LABEL_CHARS - 1] + "…"


def layered_layout(dependencies: Mapping[str, Iterable[str]]) -> DagLayout:
    """Boxes and curves for a DAG given as job -> its upstreams; upstreams that are not jobs are left out."""
    needs = {key: [up for up in ups if up in dependencies] for key, ups in dependencies.items()}
    layer_of = layers(needs)
    columns: list[list[str]] = [[] for _ in range(max(layer_of.values(), default=-1) + 1)]
    for key in sorted(layer_of):
        columns[layer_of[key]].append(key)
    row: dict[str, float] = {}
    for column in columns:
        # Barycenter of the upstreams' rows; ties (and roots) keep alphabetical order.
        column.sort(key=lambda key: sum(row[up] for up in needs[key]) / len(needs[key]) if needs[key] else 0.0)
        row.update({key: float(index) for index, key in enumerate(column)})

    tallest = max((len(column) for column in columns), default=0)
    height = tallest * NODE_HEIGHT + max(tallest - 1, 0) * ROW_GAP + 2 * MARGIN
    nodes: dict[str, PlacedNode] = {}
    x = float(MARGIN)
    for column in columns:
        width = max(MIN_NODE_WIDTH, max((len(_label(key)) for key in column), default=0) * CHAR_WIDTH + 24)
        used = len(column) * NODE_HEIGHT + (len(column) - 1) * ROW_GAP
        top = (height - used) / 2
        for index, key in enumerate(column):
            nodes[key] = PlacedNode(key, _label(key), x, top + index * (NODE_HEIGHT + ROW_GAP), width)
        x += width + LAYER_GAP
    edges = []
    for key in sorted(needs):
        for up in sorted(needs[key]):
            edges.append(PlacedEdge(up, key, _curve(nodes[up], nodes[key])))
    width = x - LAYER_GAP + MARGIN if columns else 2 * MARGIN
    return DagLayout(tuple(nodes[key] for column in columns for key in column), tuple(edges), width, height)


def _curve(upstream: PlacedNode, dependent: PlacedNode) -> str:
    x1, y1 = upstream.x + upstream.width, upstream.y + upstream.height / 2
    x2, y2 = dependent.x - 4, dependent.y + dependent.height / 2  # stop short for the arrowhead
    bend = max((x2 - x1) / 2, 16)
    return f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
