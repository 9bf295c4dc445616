"""Cost: the pricing rule, a run's usage over every recorded attempt and check, and the run events that carry it."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from baton.config import ConfigError, Settings
from baton.domain.cost import TIB, Pricing, money
from baton.domain.naming import bigquery_job_id, check_job_id
from baton.domain.records import CheckCompletion, Completion, JobError, JobStats, Usage
from tests.unit.test_checks import manifest_with_checks
from tests.unit.test_engine import World

GIB = 2**30


def test_on_demand_prices_bytes_billed_and_reservations_price_slot_hours() -> None:
    usage = Usage(bytes_processed=3 * TIB, bytes_billed=2 * TIB, slot_ms=7_200_000)
    assert Pricing().cost(usage) == pytest.approx(12.5), "2 TiB billed at the default 6.25 USD"
    assert Pricing(per_tib=5.0).cost(usage) == pytest.approx(10.0)
    reserved = Pricing(per_slot_hour=0.04)
    assert reserved.cost(usage) == pytest.approx(0.08), "2 slot-hours at 0.04"
    assert (Pricing().model, reserved.model) == ("on-demand", "slot-hours")
    assert Pricing().to_json(usage) == {
        "bytes_processed": 3 * TIB,
        "bytes_billed": 2 * TIB,
        "slot_ms": 7_200_000,
        "amount": 12.5,
        "currency": "USD",
        "pricing": "on-demand",
    }
    assert (
        money(0.0000596) == "0.0000596 USD"
        and money(0.5) == "0.50 USD"
        and money(1234.5) == "1,234.50 USD"
        and money(0) == "0.00 USD"
    )


def test_settings_read_the_prices_and_refuse_nonsense() -> None:
    base = {"BATON_ENV": "dev", "BATON_PROJECT": "p"}
    assert Settings.from_env(base).pricing == Pricing()
    assert Settings.from_env({**base, "BATON_PRICE_PER_TIB": "5"}).pricing == Pricing(per_tib=5.0)
    assert Settings.from_env({**base, "BATON_SLOT_HOUR_PRICE": "0.048"}).pricing.per_slot_hour == 0.048
    for name, raw in (("BATON_PRICE_PER_TIB", "cheap"), ("BATON_SLOT_HOUR_PRICE", "-1"), ("BATON_PRICE_PER_TIB", "nan")):
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({**base, name: raw})


def stats(billed_gib: int, slot_ms: int) -> JobStats:
    return JobStats(total_bytes_processed=2 * billed_gib * GIB, total_bytes_billed=billed_gib * GIB, total_slot_ms=slot_ms)


def test_a_run_sums_every_attempt_and_check_and_its_finishing_event_carries_the_price(tmp_path: Path) -> None:
    manifest = manifest_with_checks([{"name": "ids_present", "not_null": "id"}], retry={"max_attempts": 2})
    world = World(tmp_path, manifest)
    world.orchestrator.pricing = Pricing(per_tib=8.0)
    run_id = world.start()
    first = bigquery_job_id("test", run_id, "load", 1)
    # Attempt 1 fails retryably: BigQuery billed it all the same.
    world.orchestrator.complete(Completion(run_id, "load", 1, first, JobError("backendError", "x"), stats(1, 1000)))
    assert world.store.runs[run_id].usage == Usage(2 * GIB, GIB, 1000)
    second = bigquery_job_id("test", run_id, "load", 2)
    world.orchestrator.complete(Completion(run_id, "load", 2, second, None, stats(2, 2000)))
    check_id = check_job_id("test", run_id, "load", 2, "ids_present")
    world.orchestrator.complete(CheckCompletion(run_id, "load", 2, "ids_present", check_id, 0, None, stats(1, 500)))
    publish = bigquery_job_id("test", run_id, "publish", 1)
    world.orchestrator.complete(Completion(run_id, "publish", 1, publish, None, stats(4, 4000)))
    # A duplicate event adds nothing.
    world.orchestrator.complete(Completion(run_id, "publish", 1, publish, None, stats(4, 4000)))
    usage = world.store.runs[run_id].usage
    assert usage == Usage(16 * GIB, 8 * GIB, 7500)
    finished = world.events.events[-1]
    assert finished["type"] == "run.succeeded"
    assert finished["cost"] == {
        "bytes_processed": 16 * GIB,
        "bytes_billed": 8 * GIB,
        "slot_ms": 7500,
        "amount": round(8 / 1024 * 8.0, 6),
        "currency": "USD",
        "pricing": "on-demand",
    }
    assert all("cost" not in event for event in world.events.events[:-1]), "only a run's finishing event is priced"


def test_a_failed_run_carries_its_cost_too(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_with_checks([{"name": "ids_present", "not_null": "id"}]))
    run_id = world.start()
    world.orchestrator.complete(
        Completion(run_id, "load", 1, bigquery_job_id("test", run_id, "load", 1), JobError("invalidQuery", "no"), stats(1, 10))
    )
    failed = world.events.events[-1]
    assert failed["type"] == "run.failed"
    assert failed["cost"]["bytes_billed"] == GIB and failed["cost"]["amount"] == round(6.25 / 1024, 6)


def test_the_run_page_header_prices_the_run() -> None:
    from baton_cli.report import render_run_page
    from tests.unit.test_run_page import failed_run

    run, jobs, checks = failed_run()
    run = replace(run, usage=Usage(bytes_processed=3 * TIB, bytes_billed=TIB, slot_ms=3_600_000))
    page = render_run_page(run, jobs, checks, run.finished_at or run.created_at, project="p", location="US")  # type: ignore[arg-type]
    assert re.search(r'id="run-cost">6\.25 USD\s+\(1\.0 TiB billed', page), "1 TiB billed at the default price"
    reserved = render_run_page(run, jobs, checks, run.created_at, project="p", location="US", pricing=Pricing(per_slot_hour=2.0))  # type: ignore[arg-type]
    assert 'id="run-cost">2.00 USD' in reserved and "slot-hours at 2 USD per slot-hour" in reserved


def test_the_outbox_keeps_a_finished_runs_cost_when_pub_sub_is_down(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_with_checks([{"name": "ids_present", "not_null": "id"}]))
    world.orchestrator.pricing = Pricing(per_tib=8.0)
    run_id = world.start()
    world.events.fail = RuntimeError("Pub/Sub is down")
    failing = bigquery_job_id("test", run_id, "load", 1)
    world.orchestrator.complete(Completion(run_id, "load", 1, failing, JobError("invalidQuery", "no"), stats(1, 10)))
    (held,) = [event for event in world.store.outbox.values() if event["type"] == "run.failed"]
    assert held["cost"]["bytes_billed"] == GIB and held["cost"]["amount"] == round(8.0 / 1024, 6), "priced in the transaction"


def test_a_cancelled_runs_event_carries_its_cost(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_with_checks([{"name": "ids_present", "not_null": "id"}]))
    run_id = world.start()
    world.orchestrator.cancel(run_id)
    cancelled = world.events.events[-1]
    assert cancelled["type"] == "run.cancelled" and cancelled["cost"]["amount"] == 0
