"""Cold start: a new handler process, from spawn to its answer to the first completion event.

Each trial starts `functions-framework` on `handlers/main.py` (target
`bigquery_job_completed`) as a fresh process, with the deployed settings, and
sends it a real completion that releases a job: the answer comes only after the
handler imported its code, built its Spanner, BigQuery and Pub/Sub clients,
committed the transaction and submitted the released job. The baseline is the
same for a bare functions-framework function (`benchmarks/bare_function.py`),
in the same trials: what every new Cloud Functions instance pays anyway.

Bytecode caches are present in every timed start (an untimed first round writes
them): a deployed archive carries none, so an instance that compiles Baton's
modules from source pays roughly 0.1 s more on this machine.

A breakdown of where the handler's cold start goes is measured in a separate
fresh interpreter, importing step by step what the completion path imports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from benchmarks import shapes
from benchmarks.handler_harness import HandlerHarness
from benchmarks.measures import Summary, ratio
from devstack.emulators import functions_framework_binary
from devstack.processes import ProcessSupervisor, free_port, tcp_accepts
from devstack.stack import HANDLERS_MAIN

BARE_FUNCTION = Path(__file__).resolve().parent / "bare_function.py"
_POLL_S = 0.002

# Each step does what the completion path does next, in a fresh interpreter in handlers/; the last
# step is not on that path (run events are published only when a job fails or a run ends).
_IMPORT_STEPS = """
import json, sys, time
steps = [
    ("functions_framework", "import functions_framework"),
    ("main.py and the Baton core", "import main"),
    ("Spanner adapter (google-cloud-spanner)", "import baton.adapters.spanner_store"),
    ("BigQuery adapter (google-cloud-bigquery)", "import baton.adapters.bigquery"),
    ("building the clients (bootstrap.orchestrator())", "main.bootstrap.orchestrator()"),
    ("not on the path: Pub/Sub publisher (google-cloud-pubsub)", "import baton.adapters.pubsub"),
]
out = []
on_path = None
for name, statement in steps:
    if statement == "import baton.adapters.pubsub":
        on_path = "google.cloud.pubsub_v1" in sys.modules
    start = time.perf_counter()
    exec(statement)
    out.append([name, (time.perf_counter() - start) * 1000])
print(json.dumps({"steps": out, "pubsub_on_completion_path": on_path}))
"""


def _start(
    supervisor: ProcessSupervisor, source: Path, target: str, env: dict[str, str], name: str
) -> tuple[Any, str, float, float]:
    """Spawn a functions-framework server; return (process, url, spawn time, seconds until it accepts)."""
    port = free_port()
    argv = [
        str(functions_framework_binary()),
        f"--source={source}",
        f"--target={target}",
        "--signature-type=http",
        "--host=127.0.0.1",
        f"--port={port}",
    ]
    spawned = time.perf_counter()
    process = supervisor.start(name, argv, env=env, inherit_env=False, cwd=source.parent)
    while not tcp_accepts("127.0.0.1", port, timeout=0.5):
        if process.exit_code() is not None:
            raise RuntimeError(f"{name} exited early:\n{process.log_tail()}")
        if time.perf_counter() - spawned > 60:
            raise RuntimeError(f"{name} did not listen within 60 s:\n{process.log_tail()}")
        time.sleep(_POLL_S)
    return process, f"http://127.0.0.1:{port}/", spawned, time.perf_counter() - spawned


def _post(url: str, body: bytes) -> tuple[float, dict[str, Any]]:
    response = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=120)
    finished = time.perf_counter()
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")
    answer: dict[str, Any] = response.json()
    return finished, answer


def import_breakdown(env: dict[str, str]) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-c", _IMPORT_STEPS],
        cwd=HANDLERS_MAIN.parent,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def run(
    harness: HandlerHarness, supervisor: ProcessSupervisor, progress: Callable[[str], None], trials: int = 3
) -> dict[str, Any]:
    store = harness.use_database("bench-coldstart")
    manifest = shapes.build(shapes.chain("cold-start", 3))
    # Bytecode caches on, so that every timed start finds them (the untimed first round writes them).
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    env.update(harness.env, PYTHONUNBUFFERED="1")
    samples: dict[str, dict[str, list[float]]] = {
        kind: {"listen_s": [], "first_answer_s": [], "warm_ms": []} for kind in ("bare", "handler")
    }
    for trial in range(-1, trials):
        for kind in ("bare", "handler"):
            progress(f"cold start: {kind} function, " + (f"trial {trial + 1}/{trials}" if trial >= 0 else "untimed first start"))
            if kind == "handler":
                run_id = harness.create_run(store, manifest).run.run_id
                first, second = harness.completion(run_id, shapes.chain_key(0)), harness.completion(run_id, shapes.chain_key(1))
                process, url, spawned, listen_s = _start(
                    supervisor, HANDLERS_MAIN, "bigquery_job_completed", env, "bench-cold-handler"
                )
            else:
                first = second = b"{}"
                process, url, spawned, listen_s = _start(supervisor, BARE_FUNCTION, "ping", env, "bench-cold-bare")
            try:
                answered, answer = _post(url, first)
                warm_started = time.perf_counter()
                warm_answered, _ = _post(url, second)
            finally:
                supervisor.stop(process)
            if kind == "handler" and (
                answer.get("released") != [shapes.chain_key(1)] or not harness.submitted(run_id, shapes.chain_key(1))
            ):
                raise RuntimeError(f"the cold handler's first event should release {shapes.chain_key(1)}: {answer}")
            if trial < 0:
                continue
            samples[kind]["listen_s"].append(listen_s)
            samples[kind]["first_answer_s"].append(answered - spawned)
            samples[kind]["warm_ms"].append((warm_answered - warm_started) * 1000)
    progress("cold start: import breakdown in a fresh interpreter")
    breakdown = import_breakdown(env)
    summaries = {
        kind: {name: Summary.of(values).to_json() for name, values in series.items()} for kind, series in samples.items()
    }
    return {
        "trials": trials,
        "results": summaries,
        "ratio": ratio(summaries["handler"]["first_answer_s"]["p50"], summaries["bare"]["first_answer_s"]["p50"]),
        "import_ms": breakdown["steps"],
        "pubsub_on_completion_path": breakdown["pubsub_on_completion_path"],
    }
