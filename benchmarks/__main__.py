"""`python -m benchmarks` (`make bench`): run every benchmark once, print progress, write the results.

Results go to benchmarks/results/latest.{md,png,json}; `--scratch` writes them
under benchmarks/out/ instead (git-ignored), and `--quick` shrinks every size
to check the machinery in a minute (its numbers mean nothing; it implies --scratch).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from benchmarks import machine, report

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NAMES = ("hop_latency", "cold_start", "compute", "event_cost", "startup", "throughput", "scale", "backfill")


class Progress:
    """Timestamped progress lines on the terminal, whatever the handlers print meanwhile."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.started = time.perf_counter()

    def __call__(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.started:6.1f} s] {message}", file=self.stream, flush=True)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=NAMES, help="run only these benchmarks")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the machinery (implies --scratch)")
    parser.add_argument("--scratch", action="store_true", help="write results under benchmarks/out/ instead of results/")
    parser.add_argument("--scale-jobs", type=int, help="jobs per scale run (default 10,000; fewer implies --scratch)")
    parser.add_argument("--synth-dir", type=Path, help="reuse this synthesis of the dev stacks (cdktf.out)")
    return parser.parse_args(argv)


def run_all(args: argparse.Namespace, selected: tuple[str, ...], out: Path, progress: Callable[[str], None]) -> dict[str, Any]:
    from benchmarks import backfill, cold_start, compute, event_cost, hop_latency, scale, startup, throughput
    from benchmarks.handler_harness import HandlerHarness
    from devstack.processes import reap_orphans
    from devstack.stack import LocalStack, LocalStackOptions

    manifests_dir = out / "manifests"
    shutil.rmtree(manifests_dir, ignore_errors=True)
    manifests_dir.mkdir(parents=True)
    reap_orphans(REPO / ".devstack")
    work_dir = REPO / ".devstack" / f"bench-{os.getpid()}"
    quick = args.quick
    options = LocalStackOptions(work_dir=work_dir, job_duration_s=0.0, manifests_dir=manifests_dir, synth_dir=args.synth_dir)
    results: dict[str, Any] = {}
    with LocalStack.start(options, progress=lambda message: progress(f"local stack: {message}")) as stack:
        if "hop_latency" in selected:
            results["hop_latency"] = hop_latency.run(stack, manifests_dir, progress, hops=50 if quick else 200)
        harness = HandlerHarness.start(stack, manifests_dir)
        try:
            if "cold_start" in selected:
                results["cold_start"] = cold_start.run(harness, stack.supervisor, progress, trials=1 if quick else 5)
            if "compute" in selected:
                results["compute"] = compute.run(harness, REPO / "manifests", progress)
            if "event_cost" in selected:
                sizes = (10, 100) if quick else event_cost.SIZES
                results["event_cost"] = event_cost.run(harness, 10 if quick else 60, progress, sizes=sizes)
            if "startup" in selected:
                results["startup"] = startup.run(
                    harness, progress, repeats=1 if quick else 3, jobs=500 if quick else startup.JOBS
                )
            if "throughput" in selected:
                results["throughput"] = throughput.run(
                    harness, (2,) if quick else (1, 4), out / "logs", progress, width=50 if quick else throughput.WIDTH
                )
            if "scale" in selected:
                results["scale"] = scale.run(harness, progress, jobs=args.scale_jobs or (500 if quick else scale.JOBS))
            if "backfill" in selected:
                results["backfill"] = backfill.run(harness, REPO / "manifests", progress, count=5 if quick else backfill.DATES)
        finally:
            harness.stop()
    shutil.rmtree(work_dir, ignore_errors=True)  # kept when a benchmark failed: its logs say why
    return results


def scale_jobs_default() -> int:
    from benchmarks import scale

    return scale.JOBS


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    selected = tuple(args.only or NAMES)
    out = HERE / "out"
    scratch = args.quick or args.scratch or (args.scale_jobs is not None and args.scale_jobs < scale_jobs_default())
    results_dir = out / ("quick" if args.quick else "scratch") if scratch else HERE / "results"
    out.mkdir(parents=True, exist_ok=True)
    results_dir.mkdir(parents=True, exist_ok=True)
    progress = Progress(sys.stdout)
    about = machine.describe()
    progress(
        f"benchmarks {', '.join(selected)} on {about['cpu']} ({about['cores']} cores); handler logs go to {out / 'handlers.log'}"
    )
    started = dt.datetime.now(dt.UTC)
    with (out / "handlers.log").open("w") as handler_log, contextlib.redirect_stdout(handler_log):
        try:
            results = run_all(args, selected, out, progress)
        except Exception:
            traceback.print_exc(file=sys.__stderr__)
            progress("failed; nothing was written")
            return 1
    about["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    document = {
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round(progress.elapsed, 1),
        "quick": args.quick,
        "machine": about,
        "results": results,
    }
    (results_dir / "latest.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    report.write(document, results_dir)
    progress(f"wrote {results_dir / 'latest.md'}, latest.png and latest.json")
    print((results_dir / "latest.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
