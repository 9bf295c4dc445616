"""Reliability settings from the environment: the reconciler's times, the dead-letter topic, the delivery limit."""

from __future__ import annotations

import datetime as dt

import pytest

from baton.config import ConfigError, Settings
from baton.domain.timing import ReconcilePolicy

BASE = {"BATON_ENV": "dev", "BATON_PROJECT": "p"}


def test_defaults_are_the_deployed_policy() -> None:
    settings = Settings.from_env(BASE)
    assert settings.reconcile == ReconcilePolicy()
    assert (settings.dead_letter_topic, settings.max_delivery_attempts) == (None, None)


def test_short_times_for_the_local_stack() -> None:
    env = {
        **BASE,
        "BATON_RECONCILE_INTERVAL_S": "1",
        "BATON_RECONCILE_LOST_AFTER_S": "2.5",
        "BATON_RECONCILE_RESUBMIT_AFTER_S": "2",
        "BATON_RECONCILE_STALLED_AFTER_S": "10",
        "BATON_RECONCILE_ABANDON_CREATING_AFTER_S": "60",
        "BATON_RECONCILE_BATCH": "25",
        "BATON_RECONCILE_MAX_PAGES": "4",
        "BATON_DEAD_LETTER_TOPIC": "baton-dev-job-completed-dead-letter",
        "BATON_MAX_DELIVERY_ATTEMPTS": "10",
    }
    settings = Settings.from_env(env)
    assert settings.reconcile == ReconcilePolicy(
        interval=dt.timedelta(seconds=1),
        lost_after=dt.timedelta(seconds=2.5),
        resubmit_after=dt.timedelta(seconds=2),
        stalled_after=dt.timedelta(seconds=10),
        abandon_creating_after=dt.timedelta(seconds=60),
        batch=25,
        max_pages=4,
    )
    assert (settings.dead_letter_topic, settings.max_delivery_attempts) == ("baton-dev-job-completed-dead-letter", 10)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("BATON_RECONCILE_LOST_AFTER_S", "soon", "BATON_RECONCILE_LOST_AFTER_S 'soon' is not a number of seconds"),
        ("BATON_RECONCILE_LOST_AFTER_S", "0", "BATON_RECONCILE_LOST_AFTER_S must be a positive number of seconds, got 0"),
        ("BATON_RECONCILE_INTERVAL_S", "nan", "BATON_RECONCILE_INTERVAL_S must be a positive number of seconds, got nan"),
        ("BATON_RECONCILE_INTERVAL_S", "-5", "BATON_RECONCILE_INTERVAL_S must be a positive number of seconds, got -5"),
        ("BATON_RECONCILE_BATCH", "0", "BATON_RECONCILE_BATCH must be an integer of at least 1, got '0'"),
        ("BATON_RECONCILE_MAX_PAGES", "2.5", "BATON_RECONCILE_MAX_PAGES must be an integer of at least 1, got '2.5'"),
        ("BATON_MAX_DELIVERY_ATTEMPTS", "many", "BATON_MAX_DELIVERY_ATTEMPTS must be an integer of at least 1, got 'many'"),
    ],
)
def test_malformed_values_are_refused_by_name(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**BASE, name: value})
    assert str(refused.value) == message


def test_the_time_budget_fits_the_function_and_the_function_fits_the_ack_deadline() -> None:
    from baton.domain.timing import ACK_DEADLINE_S, CALLS_IN_SEQUENCE, DEFAULT_FUNCTION_TIMEOUT_S, TimeBudget
    from cdk.config import EnvironmentConfig, PushDelivery

    assert PushDelivery().ack_deadline_seconds == ACK_DEADLINE_S
    completion_timeout = EnvironmentConfig.__dataclass_fields__["completion_timeout_seconds"].default
    assert completion_timeout == DEFAULT_FUNCTION_TIMEOUT_S
    assert DEFAULT_FUNCTION_TIMEOUT_S < ACK_DEADLINE_S
    budget = TimeBudget()
    assert CALLS_IN_SEQUENCE * budget.call_deadline_s + budget.reserve_s == budget.function_timeout_s
    assert budget.reserve_s > 0 and budget.request_timeout_s < budget.call_deadline_s
    assert budget.call_deadline_s < 600, "BigQuery's DEFAULT_RETRY deadline is what this replaces"


def test_the_function_timeout_comes_from_the_stack() -> None:
    settings = Settings.from_env({**BASE, "BATON_FUNCTION_TIMEOUT_S": "60"})
    assert settings.budget.function_timeout_s == 60
    assert settings.budget.call_deadline_s == 15
    assert Settings.from_env(BASE).budget.function_timeout_s == 120
    with pytest.raises(ConfigError, match="BATON_FUNCTION_TIMEOUT_S"):
        Settings.from_env({**BASE, "BATON_FUNCTION_TIMEOUT_S": "7200"})
