"""The real emulators and the functions-framework servers of the local stack, each a supervised child process.

Clients find the emulators through environment variables (SPANNER_EMULATOR_HOST, PUBSUB_EMULATOR_HOST) that
the Google client libraries read when a client is built; :func:`emulator_env` sets them for a block, and each
emulator's ``env()`` says what to pass to a child such as a functions-framework server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from google.api_core.exceptions import AlreadyExists
from google.cloud import spanner

from devstack.processes import ManagedProcess, ProcessSupervisor, free_port, stopped_on_error

# The Spanner emulator's only instance config.
SPANNER_EMULATOR_CONFIG = "emulator-config"
# Without this, concurrent read-write transactions against the emulator fail instead of retrying.
SPANNER_RW_SESSIONS_VAR = "GOOGLE_CLOUD_SPANNER_MULTIPLEXED_SESSIONS_FOR_RW"
_DEFAULT_SDK_ROOT = Path("/usr/lib/google-cloud-sdk")


def cloud_sdk_root() -> Path:
    """The Google Cloud SDK install that owns the ``gcloud`` on PATH (the Debian package location otherwise)."""
    gcloud = shutil.which("gcloud")
    return Path(gcloud).resolve().parent.parent if gcloud else _DEFAULT_SDK_ROOT


def spanner_emulator_binary() -> Path:
    """``emulator_main``: the gRPC emulator itself; ``gateway_main`` would add a REST front we do not need."""
    return cloud_sdk_root() / "bin" / "cloud_spanner_emulator" / "emulator_main"


@contextlib.contextmanager
def emulator_env(env: Mapping[str, str]) -> Iterator[None]:
    """Set ``env`` in ``os.environ`` for the block, then restore what was there (also on error)."""
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass(frozen=True)
class SpannerEmulator:
    """A running Cloud Spanner emulator (gRPC only) on 127.0.0.1."""

    process: ManagedProcess
    port: int

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls, supervisor: ProcessSupervisor, *, port: int | None = None, name: str = "spanner-emulator", timeout: float = 30.0
    ) -> SpannerEmulator:
        """Start it and wait until its gRPC port accepts connections (a fraction of a second)."""
        port = port or free_port()
        process = supervisor.start(name, [str(spanner_emulator_binary()), f"--host_port=127.0.0.1:{port}"])
        with stopped_on_error(process):
            process.wait_for_tcp(port, timeout=timeout)
        return cls(process=process, port=port)

    def env(self) -> dict[str, str]:
        """Variables a Spanner client (in this process or a child) needs to talk to this emulator."""
        return spanner_emulator_env(self.host)

    def stop(self) -> None:
        self.process.stop()


def spanner_emulator_env(host: str) -> dict[str, str]:
    return {"SPANNER_EMULATOR_HOST": host, SPANNER_RW_SESSIONS_VAR: "false"}


def create_spanner_database(
    host: str,
    *,
    project: str,
    instance: str,
    database: str,
    ddl: Sequence[str] = (),
    node_count: int = 1,
    timeout: float = 120.0,
) -> None:
    """Create the instance and the database (with ``ddl``) on the emulator at ``host``; existing ones are kept.

    The DDL is applied only when the database is created: schema changes to an existing database are the
    caller's business.
    """
    with emulator_env(spanner_emulator_env(host)):
        client = spanner.Client(project=project)
        spanner_instance = client.instance(
            instance,
            configuration_name=f"projects/{project}/instanceConfigs/{SPANNER_EMULATOR_CONFIG}",
            display_name=instance,
            node_count=node_count,
        )
        with contextlib.suppress(AlreadyExists):
            spanner_instance.create().result(timeout)
        spanner_database = spanner_instance.database(database, ddl_statements=list(ddl))
        with contextlib.suppress(AlreadyExists):
            spanner_database.create().result(timeout)


@dataclass(frozen=True)
class PubSubEmulator:
    """A running Pub/Sub emulator: a gcloud wrapper and its Java child, in one process group."""

    process: ManagedProcess
    port: int
    project: str

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls,
        supervisor: ProcessSupervisor,
        *,
        project: str,
        port: int | None = None,
        name: str = "pubsub-emulator",
        timeout: float = 60.0,
    ) -> PubSubEmulator:
        """Start it and wait until ``GET /`` answers "Ok" (the JVM start takes seconds on a small machine).

        gcloud's own config, logs and the emulator's data dir go under the supervisor's work dir, so nothing
        lands in the home directory.
        """
        port = port or free_port()
        data_dir = supervisor.work_dir / f"{name}-data"
        data_dir.mkdir(parents=True, exist_ok=True)  # gcloud fails if it is missing
        gcloud = shutil.which("gcloud") or str(cloud_sdk_root() / "bin" / "gcloud")
        argv = [
            gcloud,
            "beta",
            "emulators",
            "pubsub",
            "start",
            f"--host-port=127.0.0.1:{port}",
            f"--project={project}",
            f"--data-dir={data_dir}",
        ]
        env = {"CLOUDSDK_CONFIG": str(supervisor.work_dir / "gcloud-config"), "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}
        process = supervisor.start(name, argv, env=env)
        with stopped_on_error(process):
            process.wait_for_http(f"http://127.0.0.1:{port}/", expect_body="Ok", timeout=timeout)
        return cls(process=process, port=port, project=project)

    def env(self) -> dict[str, str]:
        """Variables a Pub/Sub client (in this process or a child) needs to talk to this emulator."""
        return pubsub_emulator_env(self.host, self.project)

    def stop(self) -> None:
        self.process.stop()


def pubsub_emulator_env(host: str, project: str | None = None) -> dict[str, str]:
    env = {"PUBSUB_EMULATOR_HOST": host}
    if project:
        env["PUBSUB_PROJECT_ID"] = project
    return env


def functions_framework_binary() -> Path:
    """The ``functions-framework`` script of the virtualenv running this code (PATH as a fallback)."""
    beside = Path(sys.executable).parent / "functions-framework"
    if beside.exists():
        return beside
    found = shutil.which("functions-framework")
    if found is None:
        raise FileNotFoundError("functions-framework is not installed in this environment")
    return Path(found)


@dataclass(frozen=True)
class FunctionServer:
    """One functions-framework server (gunicorn) serving one target of a source file on 127.0.0.1."""

    process: ManagedProcess
    port: int
    target: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @classmethod
    def start(
        cls,
        supervisor: ProcessSupervisor,
        *,
        source: Path,
        target: str,
        signature_type: Literal["http", "event", "cloudevent"] = "http",
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        name: str | None = None,
        timeout: float = 30.0,
    ) -> FunctionServer:
        """Serve ``target`` from ``source`` with ``env`` laid over this process's environment.

        The module is imported before the port is bound, so an accepted connection means the handler loaded.
        The working directory is the source's folder, as on Cloud Functions.
        """
        port = port or free_port()
        source = Path(source).resolve()
        argv = [
            str(functions_framework_binary()),
            f"--source={source}",
            f"--target={target}",
            f"--signature-type={signature_type}",
            "--host=127.0.0.1",
            f"--port={port}",
        ]
        process = supervisor.start(name or f"function-{target}", argv, env=env, cwd=source.parent)
        with stopped_on_error(process):
            process.wait_for_tcp(port, timeout=timeout)
        return cls(process=process, port=port, target=target)

    def stop(self) -> None:
        self.process.stop()
