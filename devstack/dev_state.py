"""Where a running `baton dev` is: the checkout, its state file and its lock. What the other commands read.

Kept apart from the supervisor (devstack/dev.py) so that the CLI's discovery imports nothing but the standard
library and devstack.processes.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from devstack.processes import process_running, process_start_time

CHECKOUT_MARKER = "cdktf.json"  # the CDKTF project file sits at the root of a checkout
DEV_DIR = Path(".devstack") / "dev"
STATE_FILE = "state.json"
LOCK_FILE = "lock"


# --- where: the checkout and its state file --------------------------------------------------------------


def checkout_root(start: Path) -> Path | None:
    """The nearest directory at or above ``start`` that holds the CDKTF project file; None outside a checkout."""
    start = start.resolve()
    for directory in (start, *start.parents):
        if (directory / CHECKOUT_MARKER).is_file():
            return directory
    return None


def dev_dir(checkout: Path) -> Path:
    return checkout / DEV_DIR


@dataclass(frozen=True)
class DevState:
    """What a running `baton dev` tells the other commands of its checkout (``state.json``)."""

    pid: int
    pid_started: str  # with pid, names the process even if the PID is reused later
    started_at: str
    checkout: str
    env: dict[str, str]  # what a client sets to reach the stack: emulator hosts, project, instance, database...
    functions: dict[str, str]  # entry point -> URL
    processes: dict[str, int]  # child name -> PID (each leads its own process group)
    reconcile_every_s: float
    manifests_dir: str
    logs: str

    def alive(self) -> bool:
        return process_running(self.pid, self.pid_started)

    def write(self, path: Path) -> None:
        """Replace the file in one rename, so a reader never sees half of it."""
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        partial.replace(path)

    @classmethod
    def read(cls, path: Path) -> DevState | None:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            return cls(**document)
        except (OSError, ValueError, TypeError):
            return None


def read_state(checkout: Path) -> DevState | None:
    """The state of the `baton dev` running in ``checkout``; None when none runs (a stale file is ignored)."""
    state = DevState.read(dev_dir(checkout) / STATE_FILE)
    return state if state is not None and state.alive() else None


def discover(start: Path) -> dict[str, str] | None:
    """The variables with which a client reaches the `baton dev` of the checkout that contains ``start``.

    None outside a checkout, or when no `baton dev` runs there (its state file is left by a process that is gone).
    """
    root = checkout_root(start)
    state = read_state(root) if root is not None else None
    return dict(state.env) if state is not None else None


# --- one per checkout ------------------------------------------------------------------------------------


class DevLock:
    """An exclusive flock on ``.devstack/dev/lock`` held for the life of a `baton dev`; the file names the holder.

    The file itself stays: removing a locked file would let two processes lock two different files.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {process_start_time(os.getpid()) or '-'}\n")
        handle.flush()
        self._file = handle
        return True

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None

    def holder(self) -> tuple[int, str] | None:
        """The PID and start time of the live process that wrote the file (the holder, while the lock is held)."""
        try:
            pid_text, started = self.path.read_text(encoding="utf-8").split()
            pid = int(pid_text)
        except (OSError, ValueError):
            return None
        return (pid, started) if process_running(pid, started) else None
