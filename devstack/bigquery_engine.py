"""The SQL engine of the local BigQuery: a `bqemulator` subprocess that works offline.

bqemulator loads DuckDB's `spatial` extension at start and would download it.
The `duckdb-extension-spatial` wheel ships the file, so the engine gets its own
HOME whose DuckDB extension directory already holds it. The engine runs in its
own process so DuckDB and uvicorn do not compete with the caller for the GIL.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from devstack.processes import free_port

if TYPE_CHECKING:
    from devstack.processes import ManagedProcess, ProcessSupervisor

__all__ = ["BigQueryEngine", "EngineStartError", "install_spatial_extension"]


class EngineStartError(RuntimeError):
    """bqemulator did not become ready; the message carries the tail of its log."""


def install_spatial_extension(home: Path) -> Path:
    """Put the wheel-shipped spatial extension where DuckDB looks under `home`; returns its path."""
    import duckdb

    spec = importlib.util.find_spec("duckdb_extension_spatial")
    if spec is None or not spec.submodule_search_locations:
        raise EngineStartError("duckdb-extension-spatial is not installed; bqemulator cannot start offline")
    version = f"v{duckdb.__version__}"
    source = Path(next(iter(spec.submodule_search_locations))) / "extensions" / version / "spatial.duckdb_extension"
    if not source.is_file():
        raise EngineStartError(f"duckdb-extension-spatial does not match duckdb {version}: {source} is missing")
    with duckdb.connect() as connection:
        row = connection.execute("PRAGMA platform").fetchone()
    platform = str(row[0]) if row else ""
    target = home / ".duckdb" / "extensions" / version / platform / "spatial.duckdb_extension"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        try:
            target.symlink_to(source)
        except OSError:
            shutil.copyfile(source, target)
    return target


class BigQueryEngine:
    """A running bqemulator (ephemeral, in-memory). Use `BigQueryEngine.start(workdir)`; it is stopped by PID.

    With a `ProcessSupervisor` the engine is one of the local stack's supervised children
    (own process group, PID file, stopped with the stack); without one it is a plain child.
    """

    def __init__(
        self, port: int, log_path: Path, process: subprocess.Popen[bytes], managed: ManagedProcess | None = None
    ) -> None:
        self.port = port
        self.log_path = log_path
        self.process = process
        self.managed = managed

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        project: str = "local-project",
        supervisor: ProcessSupervisor | None = None,
        timeout_s: float = 60.0,
    ) -> BigQueryEngine:
        workdir = Path(workdir).resolve()
        home = workdir / "bq-home"
        home.mkdir(parents=True, exist_ok=True)
        install_spatial_extension(home)
        env = {
            "HOME": str(home),
            "BQEMU_ENABLE_FORMAT_EXTENSIONS": "false",  # avro would be downloaded too; not needed
            "BQEMU_LOG_LEVEL": "warning",
        }
        last_error = ""
        for _ in range(3):  # the free port can be taken between probing and binding
            port = free_port()
            argv = [sys.executable, "-m", "bqemulator", "start", "--rest-port", str(port), "--grpc-port", "0"]
            argv += ["--ephemeral", "--project", project]
            # cwd: bqemulator reads a .bqemu.toml from its working directory; give it an empty one.
            if supervisor is not None:
                managed = supervisor.start("bqemulator", argv, env=env, cwd=home)
                engine = cls(port, managed.log_path, managed.popen, managed)
            else:
                log_path = workdir / "bqemulator.log"
                with log_path.open("ab") as log:
                    process = subprocess.Popen(
                        argv, cwd=home, env={**os.environ, **env}, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
                    )
                engine = cls(port, log_path, process)
            if engine._wait_ready(timeout_s):
                return engine
            engine.stop()
            last_error = engine.log_tail()
        raise EngineStartError(f"bqemulator did not become ready; log tail:\n{last_error}")

    def _wait_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.endpoint}/readyz", timeout=2) as response:  # noqa: S310 (local URL)
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        return False

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(line[:500] for line in text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.managed is not None:
            self.managed.stop()
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=5)

    def __enter__(self) -> BigQueryEngine:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
