"""The scale benchmark in the results: summary rows, details and its chart panel (report.py calls these)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

Row = tuple[str, str, str, str, str, str, str]
SHAPES = {
    "wide": "root -> {w:,} -> sink succeeds",
    "fail": "root fails, {w:,}+1 skipped, FAILED",
    "cancel": "cancel a running run ({w:,} running)",
    "retry": "retry the failed run: SUCCEEDED",
}


def summary_rows(r: Mapping[str, Any]) -> list[Row]:
    rows: list[Row] = []
    width = r["jobs"] - 2
    for x in r["shapes"]:
        rows.append(
            (
                "7",
                f"Scale, {r['jobs']:,} jobs: {SHAPES[x['shape']].format(w=width)}",
                f"{x['wall_s']:,.1f} s; largest commit {x['largest_commit']:,}; "
                f"longest invocation {x['longest_invocation_s']:.2f} s",
                f"{x['events']:,} events x {r['floor_push_ms']:.0f} ms push + {x['jobs_submitted']:,} jobs x "
                f"{r['floor_insert_ms']:.1f} ms insert = {x['floor_s']:,.1f} s",
                f"{x['ratio']:.1f}x" if x["ratio"] else "-",
                f"ends {x['status']}; commit <= {r['mutation_budget']:,}",
                "yes" if x["largest_commit"] <= r["mutation_budget"] else "**no**",
            )
        )
    points = sorted(r["fan_out"], key=lambda x: x["out_degree"])
    if len(points) > 2:
        # Flat per dependent: each dependent added costs the same (the marginal cost between consecutive
        # out-degrees), whatever the out-degree. Below SUBMIT_INLINE the event submits everything itself.
        marginal = [
            (b["wall_s"] - a["wall_s"]) * 1000 / (b["out_degree"] - a["out_degree"]) for a, b in itertools.pairwise(points[1:])
        ]
        spread = max(marginal) / min(marginal) if min(marginal) > 0 else float("inf")
        rows.append(
            (
                "8",
                f"Fan-out event cost, out-degree {points[0]['out_degree']:,} to {points[-1]['out_degree']:,}",
                ", ".join(f"{p['out_degree']:,}: {p['ms_per_dependent']:.2f}" for p in points) + " ms per dependent; "
                "each added dependent: " + ", ".join(f"{m:.1f}" for m in marginal) + " ms",
                f"the cost of each added dependent between out-degrees {points[1]['out_degree']:,} and "
                f"{points[-1]['out_degree']:,}",
                f"{spread:.2f}x (largest / smallest)",
                "flat per dependent (<= 1.5x)",
                "yes" if spread <= 1.5 else "**no**",
            )
        )
    return rows


def details(r: Mapping[str, Any], table: Any) -> list[str]:
    lines = [
        "",
        f"### Scale ({r['jobs']:,}-job runs, commit budget {r['mutation_budget']:,} mutations)",
        "",
        f"Floors measured in this run: publish-to-push {r['floor_push_ms']:.1f} ms per event (median), "
        f"bare jobs.insert {r['floor_insert_ms']:.1f} ms per job (median). Every completion and continuation is a push.",
        "",
    ]
    lines += table(
        (
            "shape",
            "ends",
            "wall",
            "floor",
            "events",
            "invocations",
            "continuations",
            "redelivered",
            "largest commit",
            "longest invocation",
        ),
        [
            (
                x["shape"],
                str(x["status"]),
                f"{x['wall_s']:,.1f} s",
                f"{x['floor_s']:,.1f} s",
                f"{x['events']:,}",
                f"{x['invocations']:,}",
                f"{x['continuations']:,}",
                f"{x['redeliveries']:,}",
                f"{x['largest_commit']:,}",
                f"{x['longest_invocation_s']:.2f} s ({x['longest_invocation']})",
            )
            for x in r["shapes"]
        ],
    )
    lines += ["", "The fan-out event (root -> d -> sink: the root's completion and every continuation it causes):", ""]
    lines += table(
        ("out-degree", "wall", "per dependent", "invocations", "longest invocation", "largest commit"),
        [
            (
                f"{x['out_degree']:,}",
                f"{x['wall_s']:,.2f} s",
                f"{x['ms_per_dependent']:.2f} ms",
                f"{x['invocations']:,}",
                f"{x['longest_invocation_s']:.2f} s",
                f"{x['largest_commit']:,}",
            )
            for x in sorted(r["fan_out"], key=lambda x: x["out_degree"])
        ],
    )
    return lines


def panel(ax: Any, r: Mapping[str, Any]) -> None:
    names = [x["shape"] for x in r["shapes"]]
    ax.bar(names, [x["wall_s"] for x in r["shapes"]], label="wall time")
    ax.scatter(names, [x["floor_s"] for x in r["shapes"]], marker="_", s=900, color="black", label="floor", zorder=3)
    ax.set_ylabel("seconds")
    ax.legend(fontsize=8)
    ax.set_title(f"7. {r['jobs']:,}-job shapes, largest commit {r['largest_commit']:,} of {r['mutation_budget']:,}")
