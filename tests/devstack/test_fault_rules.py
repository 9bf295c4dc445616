"""The fault board's own rules: matching, counts, probability and settings, without a stack."""

from __future__ import annotations

import pytest

from devstack.faults import DEFAULT_MAX_QUEUED, FaultBoard, FaultDocumentError, FaultRule, JobQueueLimits


def test_a_rule_matches_on_prefix_labels_identity_and_function_and_spends_its_count() -> None:
    board = FaultBoard()
    board.add(FaultRule(method="jobs.insert", status=503, job_id_prefix="baton_r1", labels={"baton_job": "a"}, count=1))

    assert board.take("jobs.get", job_id="baton_r1_a", labels={"baton_job": "a"}) is None  # another method
    assert board.take("jobs.insert", job_id="baton_r2_a", labels={"baton_job": "a"}) is None  # another prefix
    assert board.take("jobs.insert", job_id="baton_r1_a", labels={"baton_job": "b"}) is None  # another label
    assert board.take("jobs.insert", job_id="baton_r1_a", labels={"baton_job": "a", "x": "y"}) is not None
    assert board.take("jobs.insert", job_id="baton_r1_a", labels={"baton_job": "a"}) is None  # count spent
    assert board.state()["rules"][0] == {
        "method": "jobs.insert",
        "status": 503,
        "job_id_prefix": "baton_r1",
        "labels": {"baton_job": "a"},
        "count": 1,
        "remaining": 0,
        "hits": 1,
    }

    board.add(FaultRule(method="function.invoke", delay_s=1.0, function="reconcile"))
    assert board.take("function.invoke", function="start_manifest") is None
    assert board.take("function.invoke", function="reconcile") is not None


def test_probability_is_seeded_so_a_failing_run_can_be_replayed() -> None:
    def draws(seed: int) -> list[bool]:
        board = FaultBoard(seed=seed)
        board.add(FaultRule(method="jobs.get", status=503, probability=0.3))
        return [board.take("jobs.get", job_id=f"j{i}") is not None for i in range(200)]

    assert draws(7) == draws(7)
    assert 30 < sum(draws(7)) < 90


@pytest.mark.parametrize(
    "rule",
    [
        {"method": "jobs.teleport"},
        {"method": "jobs.get", "status": 302},
        {"method": "jobs.get", "truncate": True},
        {"method": "auditlog.jobDone"},
        {"method": "jobs.get", "probability": 2},
        {"method": "jobs.get", "count": 0},
        {"method": "jobs.get", "colour": "red"},
    ],
)
def test_malformed_rules_are_refused(rule: dict[str, object]) -> None:
    with pytest.raises(FaultDocumentError):
        FaultBoard().apply({"rules": [rule]})


def test_settings_merge_and_clear_back_to_off() -> None:
    board = FaultBoard()
    board.apply({"settings": {"job_queue": {"max_running": 3}}})
    board.apply({"settings": {"owner_only_results": True}})

    assert board.settings.job_queue == JobQueueLimits(max_running=3, max_queued=DEFAULT_MAX_QUEUED)
    assert board.settings.owner_only_results
    with pytest.raises(FaultDocumentError):
        board.apply({"settings": {"job_queue": {"max_running": -1}}})
    board.clear()
    assert board.state() == FaultBoard().state()
