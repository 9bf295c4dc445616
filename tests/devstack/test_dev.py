"""`baton dev` on the real local stack, started as a user would: a subprocess in a checkout outside the repository.

One instance serves the module (its start-up is most of the cost); the tests run in file order and the last
one stops it with `--stop` from another directory and looks for anything left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from devstack.dev import discover, main
from devstack.dev_state import STATE_FILE, DevState, dev_dir
from devstack.emulators import emulator_env
from devstack.processes import free_port, group_members, http_get, process_running, process_start_time, reap_orphans

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BATON = Path(sys.executable).parent / "baton"
START_TIMEOUT_S = 240.0  # synthesis and every emulator, on a small shared machine
MANIFEST = """\
name: hello
description: The smallest manifest, for baton dev's tests.
jobs:
  - key: greet
    sql_file: sql/greet.sql
"""
# A developer's own settings would make the CLI ignore the running stack; tests start without them.
_CLIENT_VARS = ("SPANNER_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "PUBSUB_PROJECT_ID")


def clean_env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if not name.startswith("BATON_") and name not in _CLIENT_VARS}


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


@dataclass
class DevProcess:
    """A `python -m devstack.dev` child and every line it printed so far."""

    popen: subprocess.Popen[str]
    checkout: Path
    lines: list[str] = field(default_factory=list)

    def read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, text: str, timeout: float) -> str:
        def found() -> str | None:
            return next((line for line in list(self.lines) if text in line), None)

        if not wait_until(lambda: found() or self.popen.poll() is not None, timeout) or found() is None:
            raise AssertionError(f"baton dev never printed {text!r}; its output:\n{self.output()}")
        return str(found())

    @property
    def state_path(self) -> Path:
        return dev_dir(self.checkout) / STATE_FILE

    def state(self) -> DevState:
        state = DevState.read(self.state_path)
        assert state is not None, f"no readable {self.state_path}; output:\n{self.output()}"
        return state


def run_dev(cwd: Path, *args: str, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack.dev", *args], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout
    )


def make_checkout(root: Path) -> Path:
    """A checkout of the user's own: the CDKTF project file and a manifests folder, nowhere near the repository."""
    shutil.copy(REPO / "cdktf.json", root / "cdktf.json")
    (root / "manifests" / "sql").mkdir(parents=True)
    (root / "manifests" / "hello.yaml").write_text(MANIFEST)
    (root / "manifests" / "sql" / "greet.sql").write_text("SELECT 'hello' AS greeting\n")
    (root / "deep" / "er").mkdir(parents=True)
    return root


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkout(tmp_path_factory.mktemp("checkout"))


@pytest.fixture(scope="module")
def dev(checkout: Path, synth_dir: Path) -> Iterator[DevProcess]:
    """The session's synthesis is reused; synthesizing from outside the repository is tested on its own below."""
    popen = subprocess.Popen(
        [sys.executable, "-m", "devstack.dev", "--reconcile-every", "1", "--synth-dir", str(synth_dir)],
        cwd=checkout / "deep" / "er",
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a Ctrl-C in the test's terminal must not reach it: the tests stop it
    )
    process = DevProcess(popen, checkout)
    threading.Thread(target=process.read, daemon=True).start()
    try:
        process.wait_for_line("baton dev is up", START_TIMEOUT_S)
        yield process
    finally:
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(60)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(10)
        reap_orphans(dev_dir(checkout))  # only does something when a test killed baton dev outright


# --- without a stack -------------------------------------------------------------------------------------


def test_discover_ignores_a_state_file_whose_process_is_gone(tmp_path: Path) -> None:
    root = make_checkout(tmp_path)
    dev_dir(root).mkdir(parents=True)
    live = DevState(
        pid=os.getpid(),
        pid_started=str(process_start_time(os.getpid())),
        started_at="2026-01-01T00:00:00+00:00",
        checkout=str(root),
        env={"BATON_PROJECT": "p", "SPANNER_EMULATOR_HOST": "127.0.0.1:1"},
        functions={},
        processes={},
        reconcile_every_s=300.0,
        manifests_dir=str(root / "manifests"),
        logs=str(root),
    )
    live.write(dev_dir(root) / STATE_FILE)
    assert discover(root / "deep" / "er") == live.env

    # The same PID, started at another time: the PID was reused after the dev process died.
    DevState(**{**live.__dict__, "pid_started": "1"}).write(dev_dir(root) / STATE_FILE)
    assert discover(root / "deep" / "er") is None
    assert discover(tmp_path.parent) is None  # outside any checkout


def test_stop_without_a_running_dev_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_checkout(tmp_path)
    monkeypatch.chdir(root / "deep")
    assert main(["--stop"]) == 0
    assert f"no baton dev runs in {root}" in capsys.readouterr().err


def test_baton_dev_hands_its_options_to_devstack_dev(tmp_path: Path) -> None:
    root = make_checkout(tmp_path)
    helped = subprocess.run([BATON, "dev", "--help"], cwd=root, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "--reconcile-every SECONDS" in helped.stdout
    stopped = subprocess.run([BATON, "dev", "--stop"], cwd=root, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0 and f"no baton dev runs in {root}" in stopped.stderr


def test_the_local_stack_finds_its_cdk_app_from_outside_the_repository(tmp_path: Path) -> None:
    script = "from devstack.stack import cdk_app; cdk_app(); import cdk.config, cdk.synth; print(cdk.config.__file__)"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == REPO / "cdk" / "config.py"


# --- one running baton dev, in file order ----------------------------------------------------------------


def test_comes_up_prints_where_and_writes_the_state_file(dev: DevProcess) -> None:
    state = dev.state()
    assert state.pid == dev.popen.pid and state.alive()
    assert state.checkout == str(dev.checkout)
    assert state.manifests_dir == str(dev.checkout / "manifests")
    assert set(state.functions) == {"bigquery_job_completed", "start_manifest", "reconcile"}
    for name in ("SPANNER_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "BATON_BIGQUERY_ENDPOINT", "BATON_PROJECT"):
        assert state.env[name], name
    assert state.env["BATON_MANIFESTS_DIR"] == str(dev.checkout / "manifests")
    assert state.env["BATON_DEV_PID"] == str(dev.popen.pid)
    output = dev.output()
    for url in state.functions.values():
        assert url in output
        assert http_get(url)[0] == 405  # the function answers; it wants a POST
    for where in (state.env["SPANNER_EMULATOR_HOST"], state.env["PUBSUB_EMULATOR_HOST"], state.env["BATON_BIGQUERY_ENDPOINT"]):
        assert where in output
    assert str(dev.state_path) in output
    assert state.reconcile_every_s == 1.0
    assert "calls reconcile every 1 s (--reconcile-every; deployed: Cloud Scheduler job" in output


def test_discover_from_a_subdirectory_returns_the_running_stack(dev: DevProcess) -> None:
    assert discover(dev.checkout / "deep" / "er") == dev.state().env
    assert discover(dev.checkout / "manifests" / "sql") == dev.state().env


def test_other_commands_in_the_checkout_use_it_with_no_settings(dev: DevProcess) -> None:
    cwd = dev.checkout / "deep" / "er"
    started = subprocess.run([BATON, "start", "hello"], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip()
    listed = subprocess.run([BATON, "runs", "-m", "hello"], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert run_id in listed.stdout


def test_settings_given_explicitly_win_over_the_running_stack(dev: DevProcess) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    env = clean_env() | {"BATON_ENV": "dev", "BATON_PROJECT": "elsewhere", "SPANNER_EMULATOR_HOST": nowhere}
    result = subprocess.run([BATON, "runs"], cwd=dev.checkout, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"the Spanner emulator at {nowhere} (SPANNER_EMULATOR_HOST) is unreachable" in result.stderr


def test_an_edit_in_the_working_tree_is_picked_up_by_the_next_start(dev: DevProcess) -> None:
    from baton.adapters.spanner_store import SpannerRunStore

    state = dev.state()
    sql = dev.checkout / "manifests" / "sql" / "greet.sql"

    def start() -> dict[str, str]:
        response = requests.post(state.functions["start_manifest"], json={"manifest": "hello", "params": {}}, timeout=60)
        assert response.status_code == 200, response.text
        body: dict[str, str] = response.json()
        return body

    before = start()
    sql.write_text("SELECT 'hello, edited' AS greeting\n")
    after = start()
    assert after["version"] != before["version"]
    with emulator_env(state.env):
        store = SpannerRunStore.connect(
            state.env["BATON_PROJECT"], state.env["BATON_SPANNER_INSTANCE"], state.env["BATON_SPANNER_DATABASE"]
        )
        (job,) = store.list_jobs(after["run_id"])
    assert "hello, edited" in job.spec.sql


def test_calls_reconcile_on_its_interval_and_reports_it(dev: DevProcess) -> None:
    line = dev.wait_for_line("reconcile: scanned", timeout=30)
    assert "open job(s)" in line


def test_a_second_instance_in_the_same_checkout_refuses(dev: DevProcess) -> None:
    state = dev.state()
    result = run_dev(dev.checkout)
    assert result.returncode == 1
    assert f"baton dev already runs in {dev.checkout} (PID {state.pid}" in result.stderr
    assert state.functions["start_manifest"] in result.stderr
    assert dev.popen.poll() is None and dev.state() == state  # the running one is untouched


def test_a_function_process_that_dies_is_started_again_and_announced(dev: DevProcess) -> None:
    before = dev.state()
    pid = before.processes["fn-start_manifest"]
    os.killpg(pid, signal.SIGKILL)
    line = dev.wait_for_line(f"start_manifest exited (PID {pid}", timeout=30)
    assert "started again" in line and before.functions["start_manifest"] in line
    assert wait_until(lambda: dev.state().processes["fn-start_manifest"] != pid, timeout=10)
    after = dev.state()
    assert after.functions["start_manifest"] == before.functions["start_manifest"]  # the same URL, as Cloud Run keeps it
    assert group_members(after.processes["fn-start_manifest"])
    assert http_get(after.functions["start_manifest"])[0] == 405


def test_stop_from_another_directory_leaves_no_process_behind(dev: DevProcess) -> None:
    state = dev.state()
    result = run_dev(dev.checkout / "manifests", "--stop")
    assert result.returncode == 0, result.stderr
    assert f"stopped baton dev (PID {state.pid})" in result.stderr
    assert dev.popen.wait(30) == 0
    assert not process_running(state.pid, state.pid_started)
    assert not dev.state_path.exists()
    assert discover(dev.checkout) is None
    left = {name: group_members(pid) for name, pid in state.processes.items() if group_members(pid)}
    assert not left, f"still running: {left}"
    # ps, in effect: no process anywhere still names this checkout on its command line.
    assert not processes_naming(dev.checkout), processes_naming(dev.checkout)
    assert "no process baton dev started is left" in dev.output()


def processes_naming(path: Path) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in argv:
            found.append(f"{entry.name}: {argv}")
    return found
