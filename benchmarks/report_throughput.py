"""The throughput benchmark in the results: summary rows, details and its chart panel (report.py calls these)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Row = tuple[str, str, str, str, str, str, str]
EVENT_SHAPE = "1 read of 3 rows, 4 writes"  # benchmarks/throughput.py's EVENT_SHAPED_TX


def _ms(value: float) -> str:
    return f"{value:,.1f} ms" if value < 100 else f"{value:,.0f} ms"


def _s(value: float) -> str:
    return f"{value:,.2f} s" if value < 10 else f"{value:,.1f} s"


def _yes(met: bool) -> str:
    return "yes" if met else "**no**"


def summary_rows(r: Mapping[str, Any]) -> list[Row]:
    rows = []
    for t in r["results"]:
        rows.append(
            (
                "3",
                f"Throughput, {r['width']:,}-wide fan-in, {t['workers']} worker(s)",
                f"{t['baton']['per_s']:,.1f} events/s",
                f"emulator's small read-write transaction (1 read, 1 write), same workers: {t['ceiling']['per_s']:,.1f}/s "
                f"(one shaped like the event, {EVENT_SHAPE}: {t['event_shaped']['per_s']:,.1f}/s)",
                f"{t['share']:.0%}",
                f">= {r['target_share']:.0%}",
                _yes(t["met"]),
            )
        )
    return rows


def details(r: Mapping[str, Any], table: Any) -> list[str]:
    lines: list[str] = []
    lines += ["", f"### Throughput ({r['width']:,}-wide fan-out, then fan-in)", ""]
    lines += table(
        ("workers", "series", "per second", "p50 / p95", "stalled (> 1 s)", "aborted attempts", "redelivered"),
        [
            (
                str(x["workers"]),
                label,
                f"{x[key]['per_s']:,.1f}",
                f"{_ms(x[key]['ms']['p50'])} / {_ms(x[key]['ms']['p95'])}",
                f"{x[key]['stalled']} of {x[key].get('invocations', x[key]['count'])}",
                f"{x[key].get('aborted_attempts', 0):,}",
                f"{x[key].get('redeliveries', 0):,}",
            )
            for x in r["results"]
            for key, label in (
                ("baton", "Baton: sibling completions of one run (run and sink rows shared)"),
                ("spread", "Baton: as many events over one run per worker (no shared row)"),
                ("ceiling", "ceiling: 1 read, 1 write"),
                ("event_shaped", f"the event's transaction alone: {EVENT_SHAPE}"),
            )
            if key in x
        ],
    )
    lines += [
        "",
        "The fan-out event (releases every sibling; submit batches come back as messages), before each fan-in:",
        "",
    ]
    lines += table(
        (
            "run",
            "event + its continuations",
            "record + release (tx)",
            "outside transactions",
            "later transactions",
            "rows read",
        ),
        [
            (
                f"before {x['workers']} worker(s)",
                _s(x["fan_out_event_s"]),
                _s(x["fan_out_transactions_s"][0]),
                _s(x["fan_out_event_s"] - sum(x["fan_out_transactions_s"])),
                _s(sum(x["fan_out_transactions_s"][1:])),
                f"{x['fan_out_rows_read']:,}",
            )
            for x in r["results"]
        ],
    )
    return lines


def panel(ax: Any, r: Mapping[str, Any]) -> None:
    labels = [f"{x['workers']} worker(s)" for x in r["results"]]
    positions = range(len(labels))
    series = (
        ("baton", "Baton: fan-in events/s"),
        ("event_shaped", f"event-shaped tx/s ({EVENT_SHAPE})"),
        ("ceiling", "ceiling: tx/s (1 read, 1 write)"),
    )
    width = 0.8 / len(series)
    for offset, (key, label) in enumerate(series):
        shift = (offset - (len(series) - 1) / 2) * width
        ax.bar([p + shift for p in positions], [x[key]["per_s"] for x in r["results"]], width=width, label=label)
    ax.set_xticks(list(positions), labels)
    ax.set_ylabel("per second")
    ax.legend(fontsize=8)
    ax.set_title(f"3. Throughput, {r['width']:,}-wide fan-in (target >= {r['target_share']:.0%} of ceiling)")
