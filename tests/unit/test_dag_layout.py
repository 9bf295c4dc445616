"""The run page's DAG layout: layers by longest path, no overlapping boxes, every edge drawn."""

from __future__ import annotations

import itertools

import pytest

from baton_cli.report.dag_layout import layered_layout, layers

ELT = {
    "land": [],
    "hist_a": ["land"],
    "hist_b": ["land"],
    "consume": ["hist_a", "hist_b"],
    "late": ["land", "consume"],
}


def test_a_job_sits_one_layer_right_of_its_deepest_upstream() -> None:
    assert layers(ELT) == {"land": 0, "hist_a": 1, "hist_b": 1, "consume": 2, "late": 3}


def test_layers_of_a_long_chain_need_no_recursion() -> None:
    chain = {f"j{i}": [f"j{i - 1}"] if i else [] for i in range(5000)}
    assert layers(chain)["j4999"] == 4999


def test_a_cycle_is_refused() -> None:
    with pytest.raises(ValueError, match="cycle"):
        layers({"a": ["b"], "b": ["a"]})


def test_boxes_do_not_overlap_and_columns_run_left_to_right() -> None:
    layout = layered_layout(ELT)
    nodes = {node.key: node for node in layout.nodes}
    assert set(nodes) == set(ELT)
    for a, b in itertools.combinations(layout.nodes, 2):
        apart = a.x + a.width <= b.x or b.x + b.width <= a.x or a.y + a.height <= b.y or b.y + b.height <= a.y
        assert apart, (a, b)
    assert nodes["land"].x < nodes["hist_a"].x == nodes["hist_b"].x < nodes["consume"].x < nodes["late"].x
    for n in layout.nodes:
        assert 0 <= n.x <= n.x + n.width <= layout.width and 0 <= n.y <= n.y + n.height <= layout.height


def test_every_edge_runs_from_the_upstreams_right_side_to_the_dependents_left() -> None:
    layout = layered_layout(ELT)
    nodes = {node.key: node for node in layout.nodes}
    assert {(e.upstream, e.dependent) for e in layout.edges} == {(up, key) for key, ups in ELT.items() for up in ups}
    for edge in layout.edges:
        start, *_, end = edge.path.replace("M", "").replace("C", "").split()
        assert float(start.split(",")[0]) == pytest.approx(nodes[edge.upstream].x + nodes[edge.upstream].width)
        assert float(end.split(",")[0]) < nodes[edge.dependent].x


def test_dependents_are_ordered_next_to_their_upstreams() -> None:
    # b_child needs b, which sorts below a; the barycenter keeps it level with b, not above.
    layout = layered_layout({"a": [], "b": [], "a_child": ["a"], "b_child": ["b"], "z_child": ["a"]})
    y = {node.key: node.y for node in layout.nodes}
    assert y["a_child"] < y["b_child"] and y["z_child"] < y["b_child"]


def test_very_long_keys_are_shortened_in_the_box_not_in_the_data() -> None:
    key = "a_very_long_job_key_that_goes_on_and_on_and_on"
    (node,) = layered_layout({key: []}).nodes
    assert node.key == key and node.label.endswith("…") and len(node.label) == 32


def test_upstreams_that_are_not_jobs_are_left_out() -> None:
    layout = layered_layout({"a": ["gone"]})
    assert [n.key for n in layout.nodes] == ["a"] and layout.edges == ()


def test_an_empty_dag_lays_out_to_nothing() -> None:
    layout = layered_layout({})
    assert layout.nodes == () and layout.edges == ()
