"""The one pricing rule: what BigQuery's metered usage costs.

On demand, BigQuery bills bytes (`totalBilledBytes`) at a price per TiB; under a
reservation the slots are what is paid for, so the same usage is priced by
slot-hours instead. Pure: the price comes from Settings (BATON_PRICE_PER_TIB,
BATON_SLOT_HOUR_PRICE), never from the environment here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from baton.domain.records import Usage

TIB = 2**40
MS_PER_HOUR = 3_600_000
ON_DEMAND_USD_PER_TIB = 6.25  # BigQuery's list price for on-demand queries in US multi-region


@dataclass(frozen=True)
class Pricing:
    """On demand at `per_tib` per TiB billed, unless `per_slot_hour` is set (capacity pricing)."""

    per_tib: float = ON_DEMAND_USD_PER_TIB
    per_slot_hour: float | None = None
    currency: str = "USD"

    @property
    def model(self) -> str:
        return "on-demand" if self.per_slot_hour is None else "slot-hours"

    def cost(self, usage: Usage) -> float:
        if self.per_slot_hour is not None:
            return usage.slot_ms / MS_PER_HOUR * self.per_slot_hour
        return usage.bytes_billed / TIB * self.per_tib

    def describe(self) -> str:
        """How the price was reached, for a table's footnote: `on-demand at 6.25 USD per TiB billed`."""
        if self.per_slot_hour is not None:
            return f"slot-hours at {self.per_slot_hour:g} {self.currency} per slot-hour"
        return f"on-demand at {self.per_tib:g} {self.currency} per TiB billed"

    def to_json(self, usage: Usage) -> dict[str, object]:
        """The usage and its price, as the run events carry them."""
        return {
            "bytes_processed": usage.bytes_processed,
            "bytes_billed": usage.bytes_billed,
            "slot_ms": usage.slot_ms,
            "amount": round(self.cost(usage), 6),
            "currency": self.currency,
            "pricing": self.model,
        }


def money(amount: float, currency: str = "USD") -> str:
    """Four significant digits below one unit (a query of a few MiB costs a fraction of a cent), else cents."""
    if amount <= 0:
        return f"0.00 {currency}"
    if amount < 1:
        decimals = max(2, 3 - math.floor(math.log10(amount)))
        text = f"{amount:.{decimals}f}"
        while text.endswith("0") and len(text.partition(".")[2]) > 2:
            text = text[:-1]
        return f"{text} {currency}"
    return f"{amount:,.2f} {currency}"
