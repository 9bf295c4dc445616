"""The results as a markdown table (for the README) and a PNG chart, from the run's JSON document."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks import report_backfill, report_scale, report_throughput

Row = tuple[str, str, str, str, str, str, str]


def _ms(value: float) -> str:
    return f"{value:,.1f} ms" if value < 100 else f"{value:,.0f} ms"


def _s(value: float) -> str:
    return f"{value:,.2f} s" if value < 10 else f"{value:,.1f} s"


def _fn_s(value: float) -> str:
    return f"{value:,.2f} fn-s" if value < 10 else f"{value:,.0f} fn-s"


def _yes(met: bool) -> str:
    return "yes" if met else "**no**"


def _hop_rows(r: Mapping[str, Any]) -> list[Row]:
    hop, floor = r["hop_ms"], r["floor_ms"]
    return [
        (
            "1",
            f"Hop overhead, p50 (p95), {hop['n']} hops",
            f"{_ms(hop['p50'])} ({_ms(hop['p95'])})",
            f"Pub/Sub emulator publish-to-push: {_ms(floor['p50'])} ({_ms(floor['p95'])})",
            f"{r['ratio_p50']:.2f}x ({r['ratio_p95']:.2f}x)",
            f"p50 <= {r['target_ratio']}x floor",
            _yes(r["met"]),
        )
    ]


def _event_rows(r: Mapping[str, Any]) -> list[Row]:
    rows = []
    for shape, t in r["targets"].items():
        what = "completes j(i), submits j(i+1)" if shape == "chain" else "sibling of a fan-in"
        rows.append(
            (
                "2",
                f"Cost per event, {shape} ({what}): {t['large_jobs']:,} vs {t['small_jobs']:,} jobs, p50",
                f"{_ms(t['large_p50_ms'])} vs {_ms(t['small_p50_ms'])}; rows read {t['rows_large']:.0f} vs {t['rows_small']:.0f}",
                f"the same handler on a {t['small_jobs']}-job manifest",
                f"{t['ratio']:.2f}x",
                f"<= {r['target_ratio']}x",
                _yes(t["met"]),
            )
        )
    return rows


def _compute_rows(r: Mapping[str, Any]) -> list[Row]:
    b, p = r["baton"], r["polling"]
    hours = r["job_seconds_total"] / 3600
    return [
        (
            "4",
            f"Compute per run, {r['manifest']} ({r['jobs']} jobs, T = {hours:.1f} h of jobs)",
            f"{_fn_s(b['busy_s'])} busy, {_fn_s(b['billed_s'])} billed",
            f"polling every {p['interval_s']:.0f} s: {_fn_s(p['busy_s'])} busy, {_fn_s(p['billed_s'])} billed; "
            f"waiting on each job: {_fn_s(p['waiting_s'])}",
            f"{b['billed_s'] / p['billed_s']:.2f}x billed",
            "below polling",
            _yes(b["billed_s"] < p["billed_s"]),
        )
    ]


def _startup_rows(r: Mapping[str, Any]) -> list[Row]:
    commits = max(t["commits"] for t in r["results"])
    worst = max(t["max_mutations"] for t in r["results"])
    jobs = r["results"][0]["jobs"]
    return [
        (
            "5",
            f"Start-up of a {jobs:,}-job run (whole start_manifest request), median",
            ", ".join(f"{t['shape']} {_s(t['total_s'])}" for t in r["results"])
            + f"; {commits:.0f} commits, each <= {worst:,.0f} mutations ({worst / r['mutation_limit']:.0%} of the limit)",
            "the same rows written alone: " + ", ".join(f"{t['shape']} {_s(t['floor_s'])}" for t in r["results"]),
            ", ".join(f"{t['ratio']:.2f}x" for t in r["results"]),
            f"commits <= {r['mutation_limit']:,} mutations",
            _yes(all(t["within_limit"] for t in r["results"])),
        )
    ]


def _cold_rows(r: Mapping[str, Any]) -> list[Row]:
    handler, bare = r["results"]["handler"], r["results"]["bare"]
    return [
        (
            "6",
            f"Cold start: spawn to first completion answered, p50 of {r['trials']}",
            f"{_s(handler['first_answer_s']['p50'])} (listening after {_s(handler['listen_s']['p50'])})",
            f"bare functions-framework function: {_s(bare['first_answer_s']['p50'])}",
            f"{r['ratio']:.2f}x",
            "the completion path imports only what it uses",
            _yes(r["pubsub_on_completion_path"] is False),
        )
    ]


_SUMMARY: dict[str, Callable[[Mapping[str, Any]], list[Row]]] = {
    "hop_latency": _hop_rows,
    "event_cost": _event_rows,
    "throughput": report_throughput.summary_rows,
    "compute": _compute_rows,
    "startup": _startup_rows,
    "cold_start": _cold_rows,
    "scale": report_scale.summary_rows,
    "backfill": report_backfill.summary_rows,
}


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _details(results: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    if "event_cost" in results:
        r = results["event_cost"]
        lines += ["", f"### Cost per event ({r['events_per_size']} events per size, interleaved)", ""]
        lines += _table(
            ("shape", "jobs", "handler p50", "handler p95", "of which in transactions, p50", "rows read", "transactions"),
            [
                (
                    x["shape"],
                    f"{x['jobs']:,}",
                    _ms(x["handler_ms"]["p50"]),
                    _ms(x["handler_ms"]["p95"]),
                    _ms(x["in_transactions_ms"]["p50"]),
                    f"{x['rows_read']['p50']:.0f}",
                    f"{x['transactions']['p50']:.0f}",
                )
                for x in r["results"]
            ],
        )
    if "throughput" in results:
        lines += report_throughput.details(results["throughput"], _table)
    if "compute" in results:
        r = results["compute"]
        b, p = r["baton"], r["polling"]
        lines += [
            "",
            f"### Compute per run ({r['manifest']}, {r['jobs']} jobs, {r['job_seconds_total'] / 3600:.2f} h of jobs, "
            f"makespan {r['makespan_s'] / 3600:.2f} h)",
            "",
        ]
        lines += _table(
            ("who", "what runs", "busy", f"billed ({r['billing_unit_s'] * 1000:.0f} ms units)"),
            [
                (
                    "Baton",
                    f"start ({_ms(b['start_s'] * 1000)}), {b['events']} events (p50 {_ms(b['event_ms']['p50'])}), "
                    f"{b['reconciler_passes']} reconciler passes (p50 {_ms(b['reconcile_ms_p50'])}) "
                    f"with {b['reconciler_lookups']:.1f} lookups",
                    _fn_s(b["busy_s"]),
                    _fn_s(b["billed_s"]),
                ),
                (
                    f"polling every {p['interval_s']:.0f} s",
                    f"{p['checks']} jobs.get checks (p50 {_ms(p['jobs_get_ms_p50'])}) in {p['invocations']} invocations",
                    _fn_s(p["busy_s"]),
                    _fn_s(p["billed_s"]),
                ),
                ("polling, waiting on each job", "a worker held while each job runs", "-", _fn_s(p["waiting_s"])),
            ],
        )
    if "startup" in results:
        r = results["startup"]
        lines += ["", "### Start-up (median)", ""]
        lines += _table(
            (
                "shape",
                "jobs",
                "edges",
                "total",
                "load + validate YAML",
                "write rows",
                "activate + submit root",
                "floor: rows alone",
                "commits",
                "max mutations",
            ),
            [
                (
                    x["shape"],
                    f"{x['jobs']:,}",
                    f"{x['edges']:,}",
                    _s(x["total_s"]),
                    _s(x["load_s"]),
                    _s(x["write_s"]),
                    _s(x["other_s"]),
                    _s(x["floor_s"]),
                    f"{x['commits']:.0f}",
                    f"{x['max_mutations']:,.0f}",
                )
                for x in r["results"]
            ],
        )
    if "cold_start" in results:
        r = results["cold_start"]
        lines += ["", f"### Cold start (p50 of {r['trials']} trials each)", ""]
        lines += _table(
            ("function", "listening", "first answer", "next (warm) answer"),
            [
                (
                    kind,
                    _s(x["listen_s"]["p50"]),
                    _s(x["first_answer_s"]["p50"]),
                    _ms(x["warm_ms"]["p50"]),
                )
                for kind, x in r["results"].items()
            ],
        )
        lines += ["", "Where the handler's cold start goes, step by step in a fresh interpreter:", ""]
        lines += _table(("step", "time"), [(name, _ms(ms)) for name, ms in r["import_ms"]])
        loaded = "yes" if r["pubsub_on_completion_path"] else "no"
        lines += ["", f"google-cloud-pubsub loaded on the completion path: {loaded}."]
    if "hop_latency" in results:
        r = results["hop_latency"]
        lines += ["", "### Hop latency", ""]
        lines += _table(
            ("series", "p50", "p95", "min", "max", "publish call p50"),
            [
                ("hop", *(_ms(r["hop_ms"][k]) for k in ("p50", "p95", "min", "max")), _ms(r["hop_publish_ms"]["p50"])),
                ("floor", *(_ms(r["floor_ms"][k]) for k in ("p50", "p95", "min", "max")), _ms(r["floor_publish_ms"]["p50"])),
            ],
        )
    if "scale" in results:
        lines += report_scale.details(results["scale"], _table)
    if "backfill" in results:
        lines += report_backfill.details(results["backfill"], _table)
    return lines


def markdown(document: Mapping[str, Any]) -> str:
    m, results = document["machine"], document["results"]
    machine_line = (
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, Python {m['python']}, "
        f"Cloud SDK {m.get('cloud_sdk') or '?'}; load average {m['load_average_start'][0]} at start, "
        f"{m.get('load_average_end', ['?'])[0]} at end"
    )
    lines = [
        "## Benchmarks (latest run)",
        "",
        f"`make bench` on {document['started']}, {document['duration_s'] / 60:.1f} min. Machine: {machine_line}.",
        "Every figure stands next to its floor or baseline measured in the same run; docs/benchmarks.md says how.",
    ]
    if document.get("quick"):
        lines += ["", "**Quick mode: tiny sizes to check the machinery; these numbers mean nothing.**"]
    rows: list[Row] = []
    for name, summarize in _SUMMARY.items():
        if name in results:
            rows += summarize(results[name])
    rows.sort(key=lambda row: row[0])
    lines += ["", *_table(("#", "benchmark", "Baton", "floor / baseline (same run)", "ratio", "target", "met"), rows)]
    lines += _details(results)
    return "\n".join(lines) + "\n"


def chart(document: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = document["results"]
    panels = [name for name in _PANELS if name in results]
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(6 * columns, 4.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, panels, strict=False):
        _PANELS[name](ax, results[name])
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    m = document["machine"]
    figure.suptitle(f"Baton benchmarks, {document['started']} on {m['cores']} cores ({m['cpu']})", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _panel_hop(ax: Any, r: Mapping[str, Any]) -> None:
    ax.boxplot([r["hop_samples_ms"], r["floor_samples_ms"]], showfliers=False)
    ax.set_xticks([1, 2], ["hop (publish -> next jobs.insert)", "floor (publish -> push)"])
    ax.set_ylabel("ms")
    ax.set_title(f"1. Hop latency: p50 {r['ratio_p50']:.2f}x the floor (target <= {r['target_ratio']}x)")


def _panel_events(ax: Any, r: Mapping[str, Any]) -> None:
    for shape in ("chain", "wide"):
        points = sorted((x for x in r["results"] if x["shape"] == shape), key=lambda x: x["jobs"])
        sizes = [x["jobs"] for x in points]
        p50 = [x["handler_ms"]["p50"] for x in points]
        p95 = [x["handler_ms"]["p95"] for x in points]
        ax.errorbar(
            sizes,
            p50,
            yerr=[[0] * len(p50), [b - a for a, b in zip(p50, p95, strict=True)]],
            marker="o",
            capsize=3,
            label=f"{shape} (p50, bar to p95)",
        )
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("jobs in the manifest")
    ax.set_ylabel("handler ms per event")
    ax.legend(fontsize=8)
    ax.set_title("2. Cost per completion event vs manifest size")


def _panel_compute(ax: Any, r: Mapping[str, Any]) -> None:
    b, p = r["baton"], r["polling"]
    labels = ["Baton\nbusy", "Baton\nbilled", "polling\nbusy", "polling\nbilled", "polling\nwaiting"]
    values = [b["busy_s"], b["billed_s"], p["busy_s"], p["billed_s"], p["waiting_s"]]
    ax.bar(labels, values, color=["tab:blue", "tab:blue", "tab:orange", "tab:orange", "tab:red"])
    ax.set_yscale("log")
    ax.set_ylabel("function-seconds per run (log)")
    ax.set_title(f"4. Compute per run: {r['manifest']}, {r['job_seconds_total'] / 3600:.1f} h of jobs")


def _panel_startup(ax: Any, r: Mapping[str, Any]) -> None:
    shapes = [x["shape"] for x in r["results"]]
    bottom = [0.0] * len(shapes)
    for key, label in (("load_s", "load + validate"), ("write_s", "write rows"), ("other_s", "activate + submit")):
        values = [x[key] for x in r["results"]]
        ax.bar(shapes, values, bottom=bottom, label=label)
        bottom = [a + b for a, b in zip(bottom, values, strict=True)]
    ax.scatter(
        shapes, [x["floor_s"] for x in r["results"]], marker="_", s=900, color="black", label="floor: rows alone", zorder=3
    )
    ax.set_ylabel("seconds")
    ax.legend(fontsize=8)
    ax.set_title(f"5. Start-up of a {r['results'][0]['jobs']:,}-job run")


def _panel_cold(ax: Any, r: Mapping[str, Any]) -> None:
    kinds = list(r["results"])
    listen = [r["results"][k]["listen_s"]["p50"] for k in kinds]
    first = [r["results"][k]["first_answer_s"]["p50"] for k in kinds]
    ax.bar(kinds, listen, label="spawn -> listening (imports)")
    ax.bar(kinds, [f - lsn for f, lsn in zip(first, listen, strict=True)], bottom=listen, label="-> first answer")
    ax.set_ylabel("seconds")
    ax.legend(fontsize=8)
    ax.set_title(f"6. Cold start: handler {r['ratio']:.1f}x a bare function")


_PANELS: dict[str, Callable[[Any, Mapping[str, Any]], None]] = {
    "hop_latency": _panel_hop,
    "event_cost": _panel_events,
    "throughput": report_throughput.panel,
    "compute": _panel_compute,
    "startup": _panel_startup,
    "cold_start": _panel_cold,
    "scale": report_scale.panel,
    "backfill": report_backfill.panel,
}


def write(document: Mapping[str, Any], directory: Path) -> None:
    (directory / "latest.md").write_text(markdown(document))
    chart(document, directory / "latest.png")
