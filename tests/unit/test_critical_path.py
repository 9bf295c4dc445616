"""The critical path: the longest chain by summed duration through a run's dependency edges."""

from __future__ import annotations

import pytest

from baton_cli.report.critical_path import CriticalPath, CycleError, critical_path


def test_a_chain_is_its_own_critical_path() -> None:
    path = critical_path({"a": 1.0, "b": 2.0, "c": 3.0}, {"b": ["a"], "c": ["b"]})
    assert path == CriticalPath(("a", "b", "c"), 6.0)


def test_the_slower_branch_of_a_diamond_is_taken_even_when_it_has_fewer_jobs() -> None:
    #   a -> fast1 -> fast2 -> d
    #   a -> slow ----------> d
    durations = {"a": 1.0, "fast1": 2.0, "fast2": 2.0, "slow": 10.0, "d": 1.0}
    needs = {"fast1": ["a"], "fast2": ["fast1"], "slow": ["a"], "d": ["fast2", "slow"]}
    path = critical_path(durations, needs)
    assert path.keys == ("a", "slow", "d")
    assert path.seconds == 12.0
    assert path.edges() == {("a", "slow"), ("slow", "d")}
    assert "slow" in path and "fast1" not in path


def test_the_path_ends_at_the_slowest_sink_not_at_the_deepest_one() -> None:
    durations = {"root": 1.0, "long_leaf": 30.0, "mid": 1.0, "deep_leaf": 1.0}
    needs = {"long_leaf": ["root"], "mid": ["root"], "deep_leaf": ["mid"]}
    assert critical_path(durations, needs).keys == ("root", "long_leaf")


def test_ties_are_broken_the_same_way_every_time() -> None:
    durations = {"a": 1.0, "b": 1.0, "c": 1.0}
    needs = {"c": ["b", "a"]}
    assert critical_path(durations, needs).keys == ("a", "c")
    assert critical_path(durations, {"c": ["a", "b"]}).keys == ("a", "c")


def test_float_sums_that_differ_in_the_last_bits_still_tie() -> None:
    # 0.1 + 0.2 != 0.3 in binary floating point; both chains took the same time.
    path = critical_path({"a": 0.1, "b": 0.2, "c": 0.3}, {"b": ["a"]})
    assert path.keys == ("a", "b")


def test_upstreams_that_are_not_jobs_are_ignored_and_negative_durations_count_as_zero() -> None:
    path = critical_path({"a": -5.0, "b": 2.0}, {"a": ["gone"], "b": ["a"]})
    assert path == CriticalPath(("a", "b"), 2.0)


def test_no_jobs_no_path() -> None:
    assert critical_path({}, {}) == CriticalPath((), 0.0)


def test_a_cycle_is_refused_with_the_jobs_in_it() -> None:
    with pytest.raises(CycleError, match="a, b"):
        critical_path({"a": 1.0, "b": 1.0, "c": 1.0}, {"a": ["b"], "b": ["a"]})


def test_a_long_chain_does_not_hit_the_recursion_limit() -> None:
    keys = [f"j{i:05d}" for i in range(5000)]
    needs = {key: [keys[index - 1]] for index, key in enumerate(keys) if index}
    path = critical_path(dict.fromkeys(keys, 1.0), needs)
    assert len(path.keys) == 5000 and path.seconds == 5000.0
