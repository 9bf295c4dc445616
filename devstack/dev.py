"""`baton dev`: the whole local stack, kept up while a data engineer iterates on manifests.

It starts what `make demo` starts (from the synthesized dev stacks), prints what runs where, and then
plays the parts of Google Cloud that are not a request: Cloud Run starting a new instance when a function
process dies, and Cloud Scheduler calling `reconcile` on the deployed schedule's interval. Ctrl-C, or
`baton dev --stop` from another terminal, stops every process it started.

While it runs, ``<checkout>/.devstack/dev/state.json`` says where everything is; :func:`discover` reads it
so that every other `baton` command in the checkout talks to this stack without flags or an env file.
One `baton dev` per checkout: an exclusive lock on ``.devstack/dev/lock``, which the kernel releases
however the process ends, so a killed instance never blocks the next one.

The CLI calls :func:`discover` (kept with the state file in devstack/dev_state.py); this module imports the
stack itself only when it runs it, so the CLI's import stays light.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from devstack.dev_state import LOCK_FILE, STATE_FILE, DevLock, DevState, checkout_root, dev_dir, discover, read_state
from devstack.processes import process_running, process_start_time, reap_orphans, start_process, stopped_on_error

if TYPE_CHECKING:
    from devstack.stack import LocalStack

__all__ = ["discover", "main"]  # discover: what the CLI calls (devstack.dev_state holds it)

CODE_CHECKOUT = Path(__file__).resolve().parent.parent  # the checkout this code (handlers, cdk app) comes from
ENVIRONMENT = "dev"
SUPERVISE_EVERY_S = 0.5
STOP_WAIT_S = 60.0  # the stack stops its children within ~15 s; past this, --stop kills the dev process
RESTART_BACKOFF_S = (1.0, 30.0)  # a function that cannot start is tried again after 1, 2, 4 ... 30 s


# --- stopping on a signal --------------------------------------------------------------------------------


class StopRequested(BaseException):
    """Ctrl-C, SIGTERM (`baton dev --stop`) or SIGHUP: leave whatever runs and stop the stack."""


class StopSignals:
    """Turns the first SIGINT/SIGTERM/SIGHUP into :class:`StopRequested`; later ones are ignored, so that
    stopping the children is never cut short by an impatient second Ctrl-C."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.stopping = False
        self._previous: dict[signal.Signals, Any] = {}

    def __enter__(self) -> StopSignals:
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:
            self.stopping = True
            raise StopRequested(signal.Signals(signum).name)


# --- output ----------------------------------------------------------------------------------------------


def say(message: str) -> None:
    """One line per event, with the time, flushed at once (the output is often a pipe)."""
    print(f"{dt.datetime.now():%H:%M:%S} {message}", flush=True)


def describe_reconcile(report: Mapping[str, Any]) -> str:
    """The reconcile function's report in one line: what it scanned, then only what it did."""
    did = [f"{name.replace('_', ' ')} {value}" for name, value in report.items() if name != "scanned" and value]
    return f"reconcile: scanned {report.get('scanned', 0)} open job(s); " + (", ".join(did) if did else "nothing to heal")


def _pools_line(raw: str) -> str:
    """The dev config's pools as `name size`, and where to watch them."""
    pools = json.loads(raw) if raw else {}
    listed = ", ".join(f"{name} {size}" for name, size in sorted(pools.items())) or "none"
    return f"{listed}  (`baton pools` shows slots in use and queued jobs)"


def banner(state: DevState, stack: LocalStack, reconcile_schedule: str) -> str:
    env = state.env
    rows = [
        ("Spanner", f"{env['SPANNER_EMULATOR_HOST']}  {env['BATON_SPANNER_INSTANCE']}/{env['BATON_SPANNER_DATABASE']}"),
        ("Pub/Sub", f"{env['PUBSUB_EMULATOR_HOST']}  project {env['BATON_PROJECT']}, topic {stack.topology.completion_topic}"),
        ("BigQuery", f"{env['BATON_BIGQUERY_ENDPOINT']}  location {env['BATON_BQ_LOCATION']}"),
        ("datasets", ", ".join(sorted(stack.declared_datasets())) + "  (declared by the dev config; created)"),
        ("pools", _pools_line(env.get("BATON_POOLS", ""))),
        ("Cloud Storage", f"{stack.storage.endpoint}  (`baton upload DIR gs://BUCKET/PREFIX` seeds files)"),
        *((entry_point, url) for entry_point, url in state.functions.items()),
        ("scheduler", f"calls reconcile every {state.reconcile_every_s:g} s ({reconcile_schedule})"),
        ("manifests", f"{state.manifests_dir}  (read on each start: edits need no restart)"),
        ("state", f"{dev_dir(Path(state.checkout)) / STATE_FILE}  (baton commands in this checkout use it)"),
        ("logs", state.logs),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"baton dev is up in {state.checkout} (PID {state.pid})"]
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    lines.append("Ctrl-C here, or `baton dev --stop` in another terminal, stops every process it started.")
    return "\n".join(lines)


def already_running(checkout: Path, lock: DevLock) -> str:
    state = read_state(checkout)
    if state is None:
        holder = lock.holder()
        who = f" (PID {holder[0]})" if holder else ""
        return f"baton dev is already starting in {checkout}{who}; stop it with `baton dev --stop`"
    lines = [f"baton dev already runs in {checkout} (PID {state.pid}, since {state.started_at}):"]
    width = max(map(len, state.functions), default=0)
    lines += [f"  {entry_point:<{width}}  {url}" for entry_point, url in state.functions.items()]
    lines.append("stop it with `baton dev --stop` (or Ctrl-C in its terminal)")
    return "\n".join(lines)


# --- running ---------------------------------------------------------------------------------------------


class StackDied(RuntimeError):
    """An emulator or the BigQuery engine exited: its data is gone, so the stack cannot go on."""


def synthesize_in_child(outdir: Path, work_dir: Path) -> Path:
    """The dev stacks, synthesized by a child process so that jsii's Node runtime does not live on in this one.

    The child leads its own process group with a PID file, like the stack's other children: a stop during the
    synthesis takes its Node process too, and after a `kill -9` the next start reaps it.
    """
    argv = [sys.executable, "-m", "devstack.stack", "synth", str(outdir), "--environment", ENVIRONMENT]
    child = start_process("synth", argv, work_dir=work_dir)
    with stopped_on_error(child):
        code = child.popen.wait()
    child.stop()  # the group: whatever the synthesis left running
    if code != 0:
        raise RuntimeError(f"synthesizing the dev stacks failed (exit {code}); {child.log_path}:\n{child.log_tail(20)}")
    return outdir


class DevLoop:
    """Supervises the function processes and plays Cloud Scheduler's reconcile calls until stopped."""

    def __init__(self, stack: LocalStack, state: DevState, state_path: Path) -> None:
        self.stack = stack
        self.state = state
        self.state_path = state_path
        self._retry_at: dict[str, float] = {}
        self._backoff: dict[str, float] = {}

    def run(self) -> NoReturn:
        """Until a signal raises StopRequested, or StackDied."""
        interval = self.state.reconcile_every_s
        next_reconcile = time.monotonic() + interval
        while True:
            time.sleep(SUPERVISE_EVERY_S)
            self.check_emulators()
            self.supervise_functions()
            if time.monotonic() >= next_reconcile:
                self.reconcile()
                while next_reconcile <= time.monotonic():  # ticks missed during a slow call are skipped, not caught up
                    next_reconcile += interval

    def check_emulators(self) -> None:
        stack = self.stack
        engine = stack.bigquery.engine.managed if stack.bigquery.engine is not None else None
        for process in (stack.spanner.process, stack.pubsub.process, engine, stack.storage.process):
            if process is not None and process.exit_code() is not None:
                raise StackDied(
                    f"{process.name} exited with code {process.exit_code()}; its data is gone, so baton dev stops "
                    f"(log: {process.log_path})"
                )

    def supervise_functions(self) -> None:
        for entry_point, server in list(self.stack.functions.items()):
            code = server.process.exit_code()
            if code is None or time.monotonic() < self._retry_at.get(entry_point, 0.0):
                continue
            try:
                restarted = self.stack.restart_function(entry_point)
            except Exception as exc:  # a handler that no longer imports: say so, try again later, keep the rest up
                delay = self._backoff.get(entry_point, RESTART_BACKOFF_S[0])
                self._backoff[entry_point] = min(delay * 2, RESTART_BACKOFF_S[1])
                self._retry_at[entry_point] = time.monotonic() + delay
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                say(f"{entry_point} exited and did not start again ({reason}); next try in {delay:g} s")
                continue
            self._backoff.pop(entry_point, None)
            self._retry_at.pop(entry_point, None)
            say(
                f"{entry_point} exited (PID {server.process.pid}, code {code}); started again as PID "
                f"{restarted.process.pid} behind {self.stack.fronts[entry_point].url}, as Cloud Run starts a new instance"
            )
            self.state = _with_processes(self.state, self.stack)
            self.state.write(self.state_path)

    def reconcile(self) -> None:
        import requests

        try:
            report = self.stack.reconcile()
        except requests.RequestException as exc:
            say(f"reconcile failed: {exc}")
            return
        say(describe_reconcile(report))


def _with_processes(state: DevState, stack: LocalStack) -> DevState:
    processes = {process.name: process.pid for process in stack.supervisor.processes if not process.stopped}
    functions = {entry_point: front.url for entry_point, front in stack.fronts.items()}  # callers go through Cloud Run's side
    return DevState(**{**asdict(state), "processes": processes, "functions": functions})


def serve(checkout: Path, reconcile_every_s: float | None, signals: StopSignals, synth_dir: Path | None = None) -> int:
    """Start the stack, write the state file, supervise until a stop is requested; stop everything."""
    from devstack.stack import LocalStack, LocalStackOptions
    from devstack.topology import scheduler_jobs

    directory = dev_dir(checkout)
    state_path = directory / STATE_FILE
    state_path.unlink(missing_ok=True)  # left by an instance that was killed outright
    reaped = reap_orphans(directory)
    if reaped:
        say(f"stopped {len(reaped)} process(es) left by a baton dev that was killed: PIDs {', '.join(map(str, reaped))}")
    work_dir = directory / "stack"
    shutil.rmtree(work_dir, ignore_errors=True)  # a fresh stack every time: the emulators keep nothing anyway

    say(f"starting the local stack for {checkout}")
    if synth_dir is None:
        say("synthesizing the dev stacks")
        synth_dir = synthesize_in_child(work_dir / "cdktf.out", work_dir)
    options = LocalStackOptions(
        work_dir=work_dir,
        environment=ENVIRONMENT,
        manifests_dir=checkout / "manifests",
        synth_dir=synth_dir,
        handle_signals=False,  # StopSignals turns them into StopRequested; the stack is stopped below
    )
    stack = LocalStack.start(options, progress=say)
    try:
        interval = reconcile_every_s or float(stack.settings["BATON_RECONCILE_INTERVAL_S"])
        process_started = process_start_time(os.getpid()) or "-"
        state = DevState(
            pid=os.getpid(),
            pid_started=process_started,
            started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            checkout=str(checkout),
            env={
                **stack.client_environment(),
                "BATON_DEV_PID": str(os.getpid()),
                "BATON_DEV_STATE": str(state_path),
            },
            functions={},
            processes={},
            reconcile_every_s=interval,
            manifests_dir=str(options.manifests_dir),
            logs=str(work_dir / "logs"),
        )
        state = _with_processes(state, stack)
        state.write(state_path)
        scheduled = next(job for job in scheduler_jobs(synth_dir, ENVIRONMENT) if job.entry_point == "reconcile")
        deployed = f"Cloud Scheduler job {scheduled.name}: '{scheduled.schedule}' {scheduled.time_zone}"
        schedule = f"--reconcile-every; deployed: {deployed}" if reconcile_every_s else deployed
        print(banner(state, stack, schedule), flush=True)
        DevLoop(stack, state, state_path).run()
    except StopRequested:
        signals.stopping = True
        say("stopping every process baton dev started")
        return 0
    finally:
        signals.stopping = True
        state_path.unlink(missing_ok=True)
        stack.stop()


def run(checkout: Path, reconcile_every_s: float | None, synth_dir: Path | None = None) -> int:
    lock = DevLock(dev_dir(checkout) / LOCK_FILE)
    if not lock.acquire():
        print(already_running(checkout, lock), file=sys.stderr)
        return 1
    try:
        with StopSignals() as signals:
            try:
                code = serve(checkout, reconcile_every_s, signals, synth_dir)
            except StopRequested:  # during start-up: LocalStack.start stopped what it had started
                signals.stopping = True
                code = 0
            except StackDied as exc:
                say(f"error: {exc}")
                code = 1
            except Exception as exc:
                say(f"error: baton dev failed: {type(exc).__name__}: {exc}")
                say(f"logs: {dev_dir(checkout) / 'stack' / 'logs'}")
                code = 1
        say("stopped: no process baton dev started is left")
        return code
    finally:
        lock.release()


def stop(checkout: Path) -> int:
    """Signal the running `baton dev` of ``checkout`` and wait until it has stopped everything it started."""
    directory = dev_dir(checkout)
    lock = DevLock(directory / LOCK_FILE)
    if lock.acquire():
        try:
            reaped = reap_orphans(directory)  # children of an instance killed outright, if any
            (directory / STATE_FILE).unlink(missing_ok=True)
        finally:
            lock.release()
        left = f"; stopped {len(reaped)} process(es) a killed one left behind" if reaped else ""
        print(f"no baton dev runs in {checkout}{left}", file=sys.stderr)
        return 0
    holder = _wait_for(lock.holder, timeout=5.0)
    if holder is None:
        print(f"error: baton dev holds {lock.path}, but its PID cannot be read", file=sys.stderr)
        return 1
    pid, started = holder
    print(f"stopping baton dev (PID {pid}) in {checkout}", file=sys.stderr)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_for(lambda: not process_running(pid, started), timeout=STOP_WAIT_S):
        print(f"baton dev (PID {pid}) did not stop within {STOP_WAIT_S:g} s; killing it", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not _wait_for(lambda: not process_running(pid, started), timeout=10.0):
            print(f"error: baton dev (PID {pid}) is still running", file=sys.stderr)
            return 1
        stop(checkout)  # its children are orphans now: reap them
    print(f"stopped baton dev (PID {pid})", file=sys.stderr)
    return 0


_T = TypeVar("_T")


def _wait_for(probe: Callable[[], _T], *, timeout: float, every: float = 0.2) -> _T | None:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(every)


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if not 0 < value < 10**7:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="baton dev",
        description="Start the whole local stack and keep it up; other baton commands in this checkout use it.",
    )
    parser.add_argument("--stop", action="store_true", help="stop the baton dev running in this checkout, and exit")
    parser.add_argument(
        "--synth-dir",
        type=Path,
        metavar="DIR",
        help="use the dev stacks already synthesized in DIR (a cdktf.out) instead of synthesizing them again",
    )
    parser.add_argument(
        "--reconcile-every",
        type=positive_seconds,
        metavar="SECONDS",
        help="call reconcile this often (default: the interval of the dev stack's Cloud Scheduler job)",
    )
    args = parser.parse_args(argv)
    checkout = checkout_root(Path.cwd()) or CODE_CHECKOUT
    if args.stop:
        return stop(checkout)
    return run(checkout, args.reconcile_every, args.synth_dir.resolve() if args.synth_dir else None)


if __name__ == "__main__":
    sys.exit(main())
