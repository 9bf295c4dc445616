"""Child processes of the local stack: start in their own process group, wait until ready, stop so nothing is left.

Every emulator and server the local stack runs goes through here. Each child gets its own process group, so
stopping it also stops whatever it spawned (the Pub/Sub emulator is a gcloud wrapper plus a Java child; gunicorn
forks workers). Output goes to ``<work_dir>/logs/<name>.log``; a readiness failure quotes that log's tail. A PID
file per child (``<work_dir>/pids/<name>.pid``) names the child and the process that started it, so a later run
can stop what a SIGKILLed run left behind (:func:`reap_orphans`) without touching a concurrent run's children.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import http.client
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Self

DEFAULT_STOP_TIMEOUT = 10.0
_POLL_INTERVAL = 0.05


class ReadinessError(RuntimeError):
    """A child process did not become ready in time, or exited first; the message carries its log tail."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS just handed out on ``host``; there is a small race until the child binds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on ``host:port``, so a server can bind it again.

    SO_REUSEADDR, as servers set it, lets connections lingering in TIME_WAIT not count as "in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file ('' when it does not exist)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return ""
    return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-lines:])


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state is [0], pgid [2], start time [19])."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rfind(")") + 2 :].split()


def process_start_time(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot): with the PID, it names a process even after the PID is reused."""
    stat = _proc_stat(pid)
    return stat[19] if stat else None


def process_running(pid: int, started: str) -> bool:
    """True while the process ``pid`` that started at ``started`` runs (a zombie has ended)."""
    stat = _proc_stat(pid)
    return stat is not None and stat[19] == started and stat[0] not in ("Z", "X")


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) PIDs in process group ``pgid``.

    Zombies are skipped: a signal to them succeeds although they are gone, and whether an orphan is reaped
    promptly depends on this machine's init.
    """
    if not Path("/proc/self/stat").exists():  # not Linux: a group that accepts signal 0 still has members
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _proc_stat(int(entry.name))
        if stat and stat[2] == str(pgid) and stat[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_groups(pgids: Sequence[int], *, timeout: float = DEFAULT_STOP_TIMEOUT, reap: Callable[[], object] | None = None) -> None:
    """SIGTERM each process group, wait up to ``timeout`` for all to exit, then SIGKILL whatever is left.

    Signalling every group before waiting stops several children in the time of the slowest one. ``reap``
    collects our own exited children so they do not linger as zombies while we wait.
    """
    for pgid in pgids:
        _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while True:
        if reap:
            reap()
        remaining = [pgid for pgid in pgids if group_members(pgid)]
        if not remaining:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(_POLL_INTERVAL)
    for pgid in remaining:
        _signal_group(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while any(group_members(pgid) for pgid in remaining) and time.monotonic() < deadline:
        if reap:
            reap()
        time.sleep(_POLL_INTERVAL)
    if reap:
        reap()


def stop_pid(pid: int, *, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
    """Stop the process group led by ``pid`` (started by :func:`start_process` or by an earlier run)."""
    stop_groups([pid], timeout=timeout)


@dataclass
class ManagedProcess:
    """A running child that leads its own process group (its PID is the group ID)."""

    name: str
    argv: tuple[str, ...]
    log_path: Path
    popen: subprocess.Popen[bytes]
    pid_file: Path | None = None
    stopped: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def exit_code(self) -> int | None:
        """The leader's exit status, or None while it runs."""
        return self.popen.poll()

    def alive(self) -> bool:
        """True while any process of the group runs (the leader may be gone while a child lingers)."""
        self.popen.poll()
        return bool(group_members(self.pid))

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """SIGTERM the group, wait, SIGKILL; idempotent (a stopped group is never signalled again, as its PID
        may have been reused)."""
        if not self.stopped:
            stop_groups([self.pid], timeout=timeout, reap=self.popen.poll)
            self._forget()

    def _forget(self) -> None:
        self.stopped = True
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)

    def wait_for_tcp(self, port: int, *, host: str = "127.0.0.1", timeout: float = 30.0) -> None:
        wait_for_tcp(host, port, timeout=timeout, process=self)

    def wait_for_http(self, url: str, *, expect_body: str | None = None, timeout: float = 30.0) -> None:
        wait_for_http(url, expect_body=expect_body, timeout=timeout, process=self)


@dataclass(frozen=True)
class _PidRecord:
    """What a PID file holds: the child and the process that started it, each with its start time, so that a
    PID reused by an unrelated process is never mistaken for ours."""

    pid: int
    started: str
    owner: int
    owner_started: str

    @classmethod
    def read(cls, path: Path) -> _PidRecord | None:
        try:
            pid, started, owner, owner_started = path.read_text().split()
            return cls(int(pid), started, int(owner), owner_started)
        except (FileNotFoundError, ValueError):
            return None

    def running(self) -> bool:
        return process_start_time(self.pid) == self.started and bool(group_members(self.pid))

    def owner_running(self) -> bool:
        return process_start_time(self.owner) == self.owner_started


def _clear_pid_file(pid_file: Path) -> None:
    """Make way for a new child under ``pid_file``'s name: stop an orphan left there by a dead (e.g. SIGKILLed)
    run, refuse when a live process still owns it."""
    record = _PidRecord.read(pid_file)
    if record is not None and record.running():
        if record.owner_running():
            raise RuntimeError(f"{pid_file.stem} already runs as PID {record.pid}, started by PID {record.owner}")
        stop_pid(record.pid)
    pid_file.unlink(missing_ok=True)


def reap_orphans(root: Path) -> list[int]:
    """Stop every child recorded under ``root`` (any work dir below it) whose starting process is gone.

    Children of live processes are left alone, so concurrent test sessions with their own work dirs under one
    root do not disturb each other. Returns the PIDs (process groups) that were stopped.
    """
    stopped = []
    for pid_file in sorted(Path(root).glob("**/pids/*.pid")):
        record = _PidRecord.read(pid_file)
        if record is None or not record.running():
            pid_file.unlink(missing_ok=True)
        elif not record.owner_running():
            stop_pid(record.pid)
            pid_file.unlink(missing_ok=True)
            stopped.append(record.pid)
    return stopped


def start_process(
    name: str,
    argv: Sequence[str | os.PathLike[str]],
    *,
    work_dir: Path,
    env: Mapping[str, str] | None = None,
    inherit_env: bool = True,
    cwd: Path | None = None,
) -> ManagedProcess:
    """Start ``argv`` in a new session (its own process group), stdout+stderr appended to ``work_dir/logs/name.log``.

    Appended, so that a restart under the same name (a function "instance" replaced) keeps what the
    previous process wrote: that is usually what explains why it was replaced.

    ``env`` is laid over ``os.environ`` (or replaces it when ``inherit_env`` is False). An orphan left under the
    same name and work dir by a run that died is stopped first; one whose starter still runs is an error.
    """
    logs = work_dir / "logs"
    pids = work_dir / "pids"
    logs.mkdir(parents=True, exist_ok=True)
    pids.mkdir(parents=True, exist_ok=True)
    pid_file = pids / f"{name}.pid"
    _clear_pid_file(pid_file)
    child_env = {**os.environ, **(env or {})} if inherit_env else dict(env or {})
    args = tuple(os.fspath(arg) for arg in argv)
    log_path = logs / f"{name}.log"
    with log_path.open("ab") as log:
        log.write(f"# {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')} {' '.join(args)}\n".encode())
        log.flush()
        popen = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env,
            cwd=cwd,
            start_new_session=True,
        )
    owner = os.getpid()
    pid_file.write_text(f"{popen.pid} {process_start_time(popen.pid) or '-'} {owner} {process_start_time(owner) or '-'}\n")
    return ManagedProcess(name=name, argv=args, log_path=log_path, popen=popen, pid_file=pid_file)


@contextlib.contextmanager
def stopped_on_error(process: ManagedProcess) -> Iterator[None]:
    """Stop ``process`` if the block fails (typically its readiness wait), so a failed start leaves nothing."""
    try:
        yield
    except BaseException:
        process.stop()
        raise


def _fail(process: ManagedProcess | None, what: str) -> ReadinessError:
    if process is None:
        return ReadinessError(what)
    code = process.exit_code()
    state = f"exited with code {code}" if code is not None else f"still running as PID {process.pid}"
    return ReadinessError(f"{process.name}: {what} ({state}); last lines of {process.log_path}:\n{process.log_tail()}")


def _wait(check: Callable[[], bool], *, what: str, timeout: float, process: ManagedProcess | None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if process is not None and process.exit_code() is not None:
            raise _fail(process, f"exited before {what}")
        if time.monotonic() >= deadline:
            raise _fail(process, f"not {what} after {timeout:.0f} s")
        time.sleep(0.1)


def tcp_accepts(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_tcp(host: str, port: int, *, timeout: float = 30.0, process: ManagedProcess | None = None) -> None:
    """Block until ``host:port`` accepts a connection; fail early when ``process`` exits."""
    _wait(lambda: tcp_accepts(host, port), what=f"accepting TCP on {host}:{port}", timeout=timeout, process=process)


# Loopback only: a proxy from the environment must never see these requests.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    """Status and body of a GET, without following the environment's proxy settings."""
    try:
        with _DIRECT.open(url, timeout=timeout) as response:
            return int(response.status), response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", errors="replace")


def wait_for_http(
    url: str, *, expect_body: str | None = None, timeout: float = 30.0, process: ManagedProcess | None = None
) -> None:
    """Block until GET ``url`` answers 2xx (with ``expect_body``, stripped, when given)."""

    def ready() -> bool:
        try:
            status, body = http_get(url)
        except (OSError, http.client.HTTPException):  # URLError is an OSError
            return False
        return 200 <= status < 300 and (expect_body is None or body.strip() == expect_body)

    expectation = f" with body {expect_body!r}" if expect_body is not None else ""
    _wait(ready, what=f"answering GET {url}{expectation}", timeout=timeout, process=process)


_SignalHandler = Callable[[int, FrameType | None], object] | int | None


@dataclass
class ProcessSupervisor:
    """Owns the children of one local stack and stops them all: on ``close()``, on leaving the ``with`` block
    (also through an exception), on SIGINT/SIGTERM/SIGHUP, and at interpreter exit.

    Signal handlers are installed only from the main thread; they stop the children, then hand the signal to
    the handler that was there before (so Ctrl-C still raises KeyboardInterrupt and SIGTERM still ends the
    process).
    """

    work_dir: Path
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    handle_signals: bool = True
    _processes: list[ManagedProcess] = field(default_factory=list, init=False)
    _previous: dict[signal.Signals, _SignalHandler] = field(default_factory=dict, init=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False)
    _closed: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.work_dir = Path(self.work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        atexit.register(self.close)
        if self.handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                # A signal this process ignores (SIGINT in a background job) stays ignored.
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self._previous[sig] = signal.signal(sig, self._on_signal)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    @property
    def processes(self) -> tuple[ManagedProcess, ...]:
        return tuple(self._processes)

    def start(
        self,
        name: str,
        argv: Sequence[str | os.PathLike[str]],
        *,
        env: Mapping[str, str] | None = None,
        inherit_env: bool = True,
        cwd: Path | None = None,
    ) -> ManagedProcess:
        """:func:`start_process` under this supervisor's work dir; the child is stopped with the supervisor."""
        with self._lock:
            if self._closed:
                raise RuntimeError("supervisor is closed")
            process = start_process(name, argv, work_dir=self.work_dir, env=env, inherit_env=inherit_env, cwd=cwd)
            self._processes.append(process)
            return process

    def stop(self, process: ManagedProcess) -> None:
        """Stop one child now and forget it."""
        with self._lock:
            process.stop(self.stop_timeout)
            if process in self._processes:
                self._processes.remove(process)

    def stop_all(self) -> None:
        """Stop every child; all are signalled at once, so the slowest one sets the pace."""
        with self._lock:
            processes = [p for p in self._processes if not p.stopped]
            self._processes.clear()

            def reap() -> None:
                for process in processes:
                    process.popen.poll()

            stop_groups([p.pid for p in processes], timeout=self.stop_timeout, reap=reap)
            for process in processes:
                process._forget()

    def close(self) -> None:
        """Stop everything and restore the signal handlers; idempotent."""
        with self._lock:
            self.stop_all()
            if self._closed:
                return
            self._closed = True
            atexit.unregister(self.close)
            if threading.current_thread() is threading.main_thread():
                for sig, previous in self._previous.items():
                    if signal.getsignal(sig) == self._on_signal:
                        signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
            self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        sig = signal.Signals(signum)
        previous = self._previous.get(sig, signal.SIG_DFL)
        self.close()
        if callable(previous):
            previous(signum, frame)
        elif previous in (signal.SIG_DFL, None):
            signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
