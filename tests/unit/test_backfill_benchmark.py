"""The backfill benchmark's yardsticks: the ideal makespan it compares against and the concurrency it reports."""

from __future__ import annotations

import pytest

from benchmarks.backfill import duration_s, ideal_makespan_s, longest_chain_s, most_at_once

DIAMOND = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}


def test_longest_chain_takes_the_slowest_branch() -> None:
    assert longest_chain_s(DIAMOND, {"a": 1, "b": 5, "c": 2, "d": 1}) == 7


def test_ideal_is_the_busy_pool_when_work_dominates() -> None:
    per_date = {f"2026-01-{i:02d}": {"a": 1.0, "b": 5.0, "c": 2.0, "d": 1.0} for i in range(1, 11)}
    assert ideal_makespan_s(DIAMOND, per_date, pool=4) == pytest.approx(90 / 4)


def test_ideal_is_the_longest_chain_when_the_pool_is_wide() -> None:
    per_date = {"2026-01-01": {"a": 1.0, "b": 5.0, "c": 2.0, "d": 1.0}, "2026-01-02": {"a": 1.0, "b": 1.0, "c": 1.0, "d": 9.0}}
    assert ideal_makespan_s(DIAMOND, per_date, pool=100) == 11


def test_a_slot_handed_on_at_the_same_instant_is_not_counted_twice() -> None:
    assert most_at_once([(0, 5), (5, 9), (1, 3)]) == 2
    assert most_at_once([(0, 5), (4, 9), (1, 6)]) == 3


def test_durations_are_seeded_per_date_and_job() -> None:
    assert duration_s("2026-01-01", "a") == duration_s("2026-01-01", "a")
    assert duration_s("2026-01-01", "a") != duration_s("2026-01-02", "a")
    assert 120 <= duration_s("2026-01-01", "a") <= 1200
