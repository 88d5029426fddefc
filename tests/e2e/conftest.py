"""The services as real processes (uvicorn) against the test stack, for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools import local_stack
from devtools.cli import serve_argv
from shared.settings import ChorusSettings
from tests.ports import free_ports

# Free ports, found at import: another checkout's test run may be running beside this one.
E2E_PORTS = dict(zip(("content", "sharing", "metrics", "recognition"), free_ports(4), strict=True))


@dataclass(frozen=True)
class RunningServices:
    urls: dict[str, str]
    settings: ChorusSettings
    jaeger_url: str
    logs: Path


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except OSError:
        return False


# Package scope: the services stop when the e2e tests are done. Left running, they would consume
# (and answer with events of their own) everything the integration tests publish afterwards.
@pytest.fixture(scope="package")
def services(
    stack: local_stack.StackConfig, settings: ChorusSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServices]:
    logs = tmp_path_factory.mktemp("service-logs")
    env = dict(os.environ)
    env.update(stack.env())
    env.update(
        {
            "CHORUS_MONGO_DB_PREFIX": f"{settings.mongo_db_prefix}e2e",
            "CHORUS_CONSUMER_GROUP_PREFIX": f"{settings.consumer_group_prefix}e2e",
            "CHORUS_PUBLIC_BASE_URL": f"http://127.0.0.1:{E2E_PORTS['sharing']}",
            # A spool of this run's own: on the default path, shared by every sharing process on
            # the machine, another run's relay would drain (and lose for this run) its clicks.
            "CHORUS_CLICK_SPOOL_PATH": str(logs / "click-spool.sqlite3"),
            # An erased advocate's vault entry is shredded 30 s after the erasure (a day in
            # production): every consumer has read the event by then (test_erasure_reaches_kafka).
            "CHORUS_ERASURE_GRACE_S": "30",
            "CHORUS_VAULT_SHRED_INTERVAL_S": "1",
        }
    )
    for name, port in E2E_PORTS.items():
        # Otherwise readiness could be answered by whatever already listens there, not our process.
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                raise AssertionError(
                    f"port {port} for {name} is already in use: is another e2e run going on?"
                )
    processes: dict[str, subprocess.Popen[bytes]] = {}
    files = []
    try:
        for name, port in E2E_PORTS.items():
            log = open(logs / f"{name}.log", "wb")  # noqa: SIM115 - closed in finally
            files.append(log)
            processes[name] = subprocess.Popen(
                serve_argv(name, port=port),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 90
        for name, port in E2E_PORTS.items():
            while not _ready(f"http://127.0.0.1:{port}/readyz"):
                if processes[name].poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"{name} did not become ready; its log:\n{(logs / f'{name}.log').read_text()[-3000:]}"
                    )
                time.sleep(0.3)
        yield RunningServices(
            urls={name: f"http://127.0.0.1:{port}" for name, port in E2E_PORTS.items()},
            settings=settings,
            jaeger_url=stack.jaeger_query_url,
            logs=logs,
        )
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in files:
            log.close()
