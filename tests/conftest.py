"""Fixtures for every tier.

Integration and e2e tests run against the real local stack (Kafka, SecantusDB, Jaeger). By default
the session starts a test stack on its own ports and state directory (so it never touches a
stack that `make run` started) and stops it at the end. With CHORUS_TEST_STACK=external the
tests use the stack described by the CHORUS_* variables and leave it running (fast local loops).
Each session uses its own database prefix and consumer-group prefix, and each test its own
organisation, so runs against a shared stack do not see each other's data.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools import local_stack
from shared.settings import ChorusSettings
from shared.telemetry import flush_telemetry
from shared.tenancy import TenancyGuard
from tests.ports import free_port_block

STACK_PORT_VARS = (
    "CHORUS_KAFKA_PORT",
    "CHORUS_KAFKA_CONTROLLER_PORT",
    "CHORUS_KAFKA_SASL_PORT",
    "CHORUS_KAFKA_TLS_PORT",
    "CHORUS_MONGO_PORT",
    "CHORUS_OTLP_GRPC_PORT",
    "CHORUS_OTLP_HTTP_PORT",
    "CHORUS_JAEGER_UI_PORT",
)


def session_stack_env() -> dict[str, str]:
    """A test stack of this session's own: ports free now (below Linux's ephemeral range) and a
    state directory named after them. Two test runs on one machine (two checkouts, CI beside a
    developer) then never reset or stop each other's stack, nor `make run`'s."""
    base = free_port_block(len(STACK_PORT_VARS))
    env = {var: str(base + offset) for offset, var in enumerate(STACK_PORT_VARS)}
    state_home = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local/state"))
    env["CHORUS_STATE_DIR"] = str(state_home / f"chorus/test-{base}")
    return env


SESSION_PREFIX = f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest) -> Iterator[local_stack.StackConfig]:
    if os.environ.get("CHORUS_TEST_STACK") == "external":
        yield local_stack.StackConfig.from_env()
        return
    for key, value in session_stack_env().items():
        os.environ.setdefault(key, value)
    config = local_stack.StackConfig.from_env()
    # A fresh stack each session: topics start empty, so new consumer groups (which read from
    # the beginning, as services do) never crawl through earlier runs' events.
    local_stack.reset(config)
    # Never builds here: `make test` installed everything before pytest started (make deps).
    local_stack.start(config, build=False)
    try:
        yield config
    finally:
        # Spans the in-process apps made still wait in the exporter's batch: sent now, while
        # Jaeger listens, not retried at exit into a closed log stream.
        flush_telemetry()
        local_stack.stop(config)
        # Nothing of it is used again (every session starts empty); a failed session keeps its
        # logs for reading.
        if request.session.testsfailed:
            for part in ("kafka", "secantusdb"):
                shutil.rmtree(config.part_dir(part) / "data", ignore_errors=True)
        else:
            shutil.rmtree(config.state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(stack: local_stack.StackConfig) -> ChorusSettings:
    """Settings pointing at the test stack; services copy these with their own fields."""
    return ChorusSettings(
        kafka_bootstrap=stack.kafka_bootstrap,
        mongo_url=stack.mongo_url,
        mongo_db_prefix=SESSION_PREFIX,
        # One vault for the session: a test that runs a service copy under a prefix of its own
        # must still reveal what the session's producers sealed.
        vault_database=f"{SESSION_PREFIX}_vault",
        consumer_group_prefix=SESSION_PREFIX,
        otlp_endpoint=stack.otlp_http_endpoint,
        consumer_retry_backoff_s=0.05,
        # Every query a service's store makes must name the org (shared/tenancy.py).
        mongo_tenancy_check=True,
    )


@pytest.fixture(autouse=True)
def every_query_names_its_organisation() -> Iterator[None]:
    """Fails a test in which a service's store selected documents without the org (shared/tenancy.py)."""
    TenancyGuard.seen.clear()
    yield
    unscoped, TenancyGuard.seen[:] = list(TenancyGuard.seen), []
    assert not unscoped, f"queries without their organisation: {unscoped}"


@pytest.fixture(scope="session")
def unit_settings() -> ChorusSettings:
    """Settings for pure tests: no stack, no telemetry export."""
    return ChorusSettings(telemetry_enabled=False, otlp_endpoint=None)
