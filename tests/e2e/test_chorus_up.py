"""`chorus up` (what `make run` runs), as a person at a terminal uses it.

It runs here as a second, private installation: its own state directory and stack ports, and its
gateway on CHORUS_GATEWAY_PORT with the services beside it, so it never meets a developer's
`make run` or the test stack the other tests use.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools import local_stack
from devtools.gateway import local_service_ports
from tests.ports import free_port_block

pytestmark = pytest.mark.e2e

# Ports found free at import, below the ephemeral range: the gateway, the four services beside
# it (local_service_ports), then the stack's eight. Fixed ports would meet another checkout's run.
GATEWAY = free_port_block(13)
PRIVATE_STACK = {
    "CHORUS_GATEWAY_PORT": str(GATEWAY),
    "CHORUS_KAFKA_PORT": str(GATEWAY + 5),
    "CHORUS_KAFKA_CONTROLLER_PORT": str(GATEWAY + 6),
    "CHORUS_MONGO_PORT": str(GATEWAY + 7),
    "CHORUS_OTLP_GRPC_PORT": str(GATEWAY + 8),
    "CHORUS_OTLP_HTTP_PORT": str(GATEWAY + 9),
    "CHORUS_JAEGER_UI_PORT": str(GATEWAY + 10),
    "CHORUS_KAFKA_SASL_PORT": str(GATEWAY + 11),
    "CHORUS_KAFKA_TLS_PORT": str(GATEWAY + 12),
}


@dataclass
class Up:
    process: subprocess.Popen[str]
    env: dict[str, str]
    config: local_stack.StackConfig
    log: Path


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except OSError:
        return False


def _start_up(env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    # Its own session, so the test can send Ctrl-C to its whole process group as a terminal does.
    return subprocess.Popen(
        [sys.executable, "-m", "devtools.cli", "up"],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


@pytest.fixture(scope="module")
def first_up(stack: local_stack.StackConfig) -> Iterator[Up]:
    # `stack` only so the test stack's installs are known to be there; this one runs its own.
    state = Path(tempfile.mkdtemp(prefix="chorus-up-"))
    env = {**os.environ, **PRIVATE_STACK, "CHORUS_STATE_DIR": str(state / "state")}
    config = local_stack.StackConfig.from_env(env)
    log = state / "first-up.log"
    process = _start_up(env, log)
    try:
        deadline = time.monotonic() + 150
        while "Press Ctrl-C" not in log.read_text():
            assert process.poll() is None, f"chorus up exited early:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"chorus up was not ready:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        yield Up(process, env, config, log)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        local_stack.stop(config)
        shutil.rmtree(state, ignore_errors=True)


def test_a_second_chorus_up_says_so_and_leaves_the_first_running(first_up: Up, tmp_path: Path) -> None:
    log = tmp_path / "second-up.log"
    second = _start_up(first_up.env, log)
    try:
        code = second.wait(timeout=30)
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
    output = log.read_text()
    assert code == 1, output
    assert "already running" in output and str(first_up.process.pid) in output, output
    # The first one is untouched: its stack and every service still answer.
    assert first_up.process.poll() is None
    assert all(part.healthy for part in local_stack.status(first_up.config)), local_stack.status(
        first_up.config
    )
    for port in [GATEWAY, *local_service_ports(GATEWAY).values()]:
        path = "/" if port == GATEWAY else "/readyz"
        assert _answers(f"http://127.0.0.1:{port}{path}"), f"port {port} stopped answering"


def test_ctrl_c_stops_everything_within_10_s_even_with_kafka_gone(first_up: Up) -> None:
    local_stack.stop(first_up.config, names=["kafka"])
    os.killpg(first_up.process.pid, signal.SIGINT)  # what Ctrl-C in its terminal sends
    began = time.monotonic()
    try:
        first_up.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"chorus up still running 10 s after Ctrl-C:\n{first_up.log.read_text()[-3000:]}")
    took = time.monotonic() - began
    ports = [GATEWAY, *local_service_ports(GATEWAY).values(), *first_up.config.ports().values()]
    assert all(local_stack.port_free(port) for port in ports), f"still listening after {took:.1f} s"
    assert not any(part.pid for part in local_stack.status(first_up.config))
