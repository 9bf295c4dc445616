"""Watching a run from a test: the test polls Spanner; nothing in Baton itself waits."""

from __future__ import annotations

import time

from baton.domain.records import RunRecord
from baton.service.ports import RunStore


def wait_for_run(store: RunStore, run_id: str, timeout_s: float = 120) -> RunRecord:
    """The run once it is terminal; fails the test with the run's last state after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = store.get_run(run_id)
        if run is not None and run.status.terminal:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not finish in {timeout_s} s: {store.get_run(run_id)}")
