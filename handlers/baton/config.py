"""The one place that reads the environment. Everything else receives a `Settings`."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from baton.domain.cost import ON_DEMAND_USD_PER_TIB, Pricing
from baton.domain.limits import MUTATION_LIMIT
from baton.domain.naming import ENVIRONMENT_PATTERN, POOL_NAME_PATTERN
from baton.domain.timing import ReconcilePolicy, TimeBudget
from baton.errors import BatonError
from baton.manifests.datasets import DeclaredDatasets

_HANDLERS_DIR = Path(__file__).resolve().parent.parent


class ConfigError(BatonError):
    """A required setting is missing or malformed."""


def default_manifests_dir() -> Path:
    """`manifests/` beside main.py in the deployed archive, else the repository's top-level one."""
    packaged = _HANDLERS_DIR / "manifests"
    return packaged if packaged.is_dir() else _HANDLERS_DIR.parent / "manifests"


@dataclass(frozen=True)
class Settings:
    environment: str
    project: str
    spanner_instance: str
    spanner_database: str
    bigquery_location: str
    manifests_dir: Path
    run_events_topic: str | None = None
    bigquery_endpoint: str | None = None  # the local façade; None means Google's API
    dead_letter_topic: str | None = None  # where bigquery_job_completed puts what it cannot process, with the reason
    max_delivery_attempts: int | None = None  # the push subscription's; the last attempt dead-letters with the reason
    work_topic: str | None = None  # where continuations go (see service/continuations.py); None: carried out in-process
    mutation_budget: int = MUTATION_LIMIT  # what one Spanner commit may cost; lowered in tests so chunking shows
    scratch_dataset: str | None = None  # where check queries write their rows, readable by every Baton function
    reconcile: ReconcilePolicy = field(default_factory=ReconcilePolicy)
    budget: TimeBudget = field(default_factory=TimeBudget)  # the function's timeout and each Google call's share
    # BATON_DATASETS, from the environment's config (the handlers stack sets it): what manifests may touch.
    # None (unset) leaves datasets unchecked, for a setup that declares none.
    datasets: DeclaredDatasets | None = None
    pricing: Pricing = field(default_factory=Pricing)  # what a TiB billed (or a slot-hour) costs
    lineage_topic: str | None = None  # OpenLineage run events of each job go here (projects/P/topics/T) ...
    lineage_file: str | None = None  # ... or, locally, to this file (it wins over the topic)
    # BATON_POOLS, from the environment's config: pool name -> size (jobs of the pool BigQuery has at once).
    # None (unset) leaves manifests' pool names unchecked and limits nothing, for a setup that declares none.
    pools: Mapping[str, int] | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        missing = [name for name in ("BATON_ENV", "BATON_PROJECT") if not env.get(name)]
        if missing:
            raise ConfigError(f"missing environment variable(s): {', '.join(missing)}")
        environment = env["BATON_ENV"]
        if not ENVIRONMENT_PATTERN.fullmatch(environment):
            raise ConfigError(f"BATON_ENV '{environment}' must be lowercase letters, digits or '_' (a label value)")
        return cls(
            environment=environment,
            project=env["BATON_PROJECT"],
            spanner_instance=env.get("BATON_SPANNER_INSTANCE", f"baton-{environment}"),
            spanner_database=env.get("BATON_SPANNER_DATABASE", "baton"),
            bigquery_location=env.get("BATON_BQ_LOCATION", "US"),
            manifests_dir=Path(env["BATON_MANIFESTS_DIR"]) if env.get("BATON_MANIFESTS_DIR") else default_manifests_dir(),
            run_events_topic=env.get("BATON_RUN_EVENTS_TOPIC") or None,
            bigquery_endpoint=env.get("BATON_BIGQUERY_ENDPOINT") or None,
            dead_letter_topic=env.get("BATON_DEAD_LETTER_TOPIC") or None,
            max_delivery_attempts=_optional_int(env, "BATON_MAX_DELIVERY_ATTEMPTS", minimum=1),
            work_topic=env.get("BATON_WORK_TOPIC") or None,
            mutation_budget=_mutation_budget(env),
            scratch_dataset=env.get("BATON_SCRATCH_DATASET") or None,
            reconcile=reconcile_policy(env),
            budget=time_budget(env),
            datasets=declared_datasets(env),
            pricing=pricing(env),
            lineage_topic=env.get("BATON_LINEAGE_TOPIC") or None,
            lineage_file=env.get("BATON_LINEAGE_FILE") or None,
            pools=declared_pools(env),
        )


def declared_datasets(env: Mapping[str, str]) -> DeclaredDatasets | None:
    """BATON_DATASETS (and BATON_PROJECT, whose datasets they are), or None when the environment declares none."""
    raw = env.get("BATON_DATASETS")
    if not raw:
        return None
    try:
        return DeclaredDatasets.parse(raw, project=env.get("BATON_PROJECT") or None)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def declared_pools(env: Mapping[str, str]) -> dict[str, int] | None:
    """BATON_POOLS: a JSON object of pool name -> size (a positive integer), or None when unset."""
    raw = env.get("BATON_POOLS")
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        raise ConfigError(f"BATON_POOLS is not JSON: {raw[:200]}") from None
    if not isinstance(data, dict):
        raise ConfigError("BATON_POOLS must be a JSON object of pool name -> size")
    for name, size in data.items():
        if not POOL_NAME_PATTERN.fullmatch(name):
            raise ConfigError(f"BATON_POOLS: pool name '{name}' must be lowercase letters, digits, '_' or '-', at most 63")
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ConfigError(f"BATON_POOLS: pool '{name}' size must be a positive integer, got {size!r}")
    return dict(data)


def pricing(env: Mapping[str, str]) -> Pricing:
    """BATON_PRICE_PER_TIB (on demand, default 6.25 USD); BATON_SLOT_HOUR_PRICE switches to slot-hour pricing."""
    per_tib = _optional_price(env, "BATON_PRICE_PER_TIB")
    per_slot_hour = _optional_price(env, "BATON_SLOT_HOUR_PRICE")
    return Pricing(per_tib=ON_DEMAND_USD_PER_TIB if per_tib is None else per_tib, per_slot_hour=per_slot_hour)


def _optional_price(env: Mapping[str, str], name: str) -> float | None:
    raw = env.get(name)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} '{raw}' is not a price") from None
    if not 0 <= value < 10**6:  # also refuses nan and inf
        raise ConfigError(f"{name} must be a non-negative price, got {raw}")
    return value


# Reconciler policy overrides, in seconds (or rows and pages); unset ones keep ReconcilePolicy's defaults.
# The local stack sets short times so that healing is visible within a test.
_RECONCILE_SECONDS = {
    "BATON_RECONCILE_INTERVAL_S": "interval",
    "BATON_RECONCILE_LOST_AFTER_S": "lost_after",
    "BATON_RECONCILE_RESUBMIT_AFTER_S": "resubmit_after",
    "BATON_RECONCILE_STALLED_AFTER_S": "stalled_after",
    "BATON_RECONCILE_ABANDON_CREATING_AFTER_S": "abandon_creating_after",
}
_RECONCILE_COUNTS = {"BATON_RECONCILE_BATCH": "batch", "BATON_RECONCILE_MAX_PAGES": "max_pages"}


def reconcile_policy(env: Mapping[str, str]) -> ReconcilePolicy:
    values: dict[str, object] = {}
    for name, attribute in _RECONCILE_SECONDS.items():
        seconds = _optional_float(env, name)
        if seconds is not None:
            values[attribute] = dt.timedelta(seconds=seconds)
    for name, attribute in _RECONCILE_COUNTS.items():
        count = _optional_int(env, name, minimum=1)
        if count is not None:
            values[attribute] = count
    return ReconcilePolicy(**values)  # type: ignore[arg-type]


def _mutation_budget(env: Mapping[str, str]) -> int:
    budget = _optional_int(env, "BATON_SPANNER_MUTATION_BUDGET", minimum=1_000)
    if budget is not None and budget > MUTATION_LIMIT:
        raise ConfigError(f"BATON_SPANNER_MUTATION_BUDGET is over Spanner's limit of {MUTATION_LIMIT}: {budget}")
    return MUTATION_LIMIT if budget is None else budget


def time_budget(env: Mapping[str, str]) -> TimeBudget:
    """BATON_FUNCTION_TIMEOUT_S, the timeout the stack gave this function; unset: TimeBudget's default."""
    seconds = _optional_float(env, "BATON_FUNCTION_TIMEOUT_S")
    if seconds is None:
        return TimeBudget()
    if seconds > 3600:  # gen2 HTTP functions stop at 60 minutes
        raise ConfigError(f"BATON_FUNCTION_TIMEOUT_S must be at most 3600 seconds, got {seconds:g}")
    return TimeBudget(function_timeout_s=seconds)


def _optional_float(env: Mapping[str, str], name: str) -> float | None:
    raw = env.get(name)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} '{raw}' is not a number of seconds") from None
    if not 0 < value < 10**7:  # also refuses nan and inf
        raise ConfigError(f"{name} must be a positive number of seconds, got {raw}")
    return value


def _optional_int(env: Mapping[str, str], name: str, *, minimum: int) -> int | None:
    raw = env.get(name)
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < minimum:
        raise ConfigError(f"{name} must be an integer of at least {minimum}, got '{raw}'")
    return int(raw)
