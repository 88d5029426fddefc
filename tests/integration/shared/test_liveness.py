"""The liveness probe (/healthz, shared/app.py) fails when something the service runs beside its
routes has ended for good, so that the kubelet restarts the pod: a consumer, a periodic job such as
the outbox relay, a loop of sharing's click relay or the relay's own process. (That an outage
fails it not: tests/integration/outages, and sharing's tests/integration/sharing/test_kafka_outage.py.)"""

from __future__ import annotations

import asyncio
import logging
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.errors import TopicAuthorizationFailedError
from fastapi import FastAPI

from services.content.main import create_app as content_app
from services.content.settings import ContentSettings
from services.sharing.main import create_app as sharing_app
from services.sharing.redirect.relay_process import run_relay_process
from services.sharing.redirect.spool import ClickRelay, ClickSpool
from shared.events import TOPICS
from shared.events.topics import ADVOCATES, SHARES
from shared.messaging import skip_history
from shared.outbox import Outbox
from shared.settings import ChorusSettings
from tests.helpers import eventually, group_assignments, new_org, running_app
from tests.integration.sharing.conftest import sharing_settings

pytestmark = pytest.mark.integration


async def content_started_at_end(settings: ChorusSettings) -> tuple[FastAPI, str]:
    """The content service, its consumer group started at its topics' end; and the group."""
    prefix = f"{settings.consumer_group_prefix}-live-{uuid.uuid4().hex[:6]}"
    group = f"{prefix}.content"
    await skip_history(settings.kafka_bootstrap, group, [ADVOCATES.name, SHARES.name])
    changes = {"consumer_group_prefix": prefix, "outbox_relay_interval_s": 0.2}
    return content_app(ContentSettings(**settings.model_copy(update=changes).model_dump())), group


async def not_live(client: httpx.AsyncClient) -> Any:
    """The body of /healthz once it answers 503."""
    answer = await client.get("/healthz")
    assert answer.status_code in (200, 503), answer.text
    return answer.json() if answer.status_code == 503 else None


async def test_a_consumer_stopped_for_good_fails_the_liveness_probe_which_names_its_group(
    settings: ChorusSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, group = await content_started_at_end(settings)
    org = new_org()
    async with running_app(app) as client:
        await eventually(lambda: all(c.running for c in app.state.consumers))
        alive = await client.get("/healthz")
        assert (alive.status_code, alive.json()) == (200, {"status": "ok"})

        # The dead-letter topic refuses the service (its principal lacks Write there): not an
        # outage, so the runner does not wait it out and stops for good at its first dead letter.
        producer = app.state.runtime.producer
        send_raw = producer.send_raw

        async def dead_letters_refused(
            topic: str, value: bytes | None, key: bytes | None, headers: Any
        ) -> None:
            if topic == ADVOCATES.dlq:
                raise TopicAuthorizationFailedError(topic)
            await send_raw(topic, value, key, headers)

        monkeypatch.setattr(producer, "send_raw", dead_letters_refused)
        await send_raw(ADVOCATES.name, b"{not json", b"bad", [("ce_tenant", org.encode())])

        body = await eventually(lambda: not_live(client))
        assert body == {"status": "not live", f"consumer {group}": "TopicAuthorizationFailedError"}
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["consumers"] == "stopped"
        # Why a restart is needed: the stopped runner's member stays in the group (aiokafka
        # heartbeats on) and keeps every partition, which no other replica can then take.
        [held] = await group_assignments(settings.kafka_bootstrap, group)
        assert {tp.topic for tp in held} == {ADVOCATES.name, SHARES.name}

    # The restart's stop leaves the group, so that the partitions move at once.
    assert await group_assignments(settings.kafka_bootstrap, group) == []


@pytest.fixture
def relay_cancelled_from_within(monkeypatch: pytest.MonkeyPatch) -> Iterator[asyncio.Event]:
    """Every outbox relay's run lets out a CancelledError that no one asked for (as a driver's
    own cancelled task can), which ends its periodic job; set once it has."""
    ended = asyncio.Event()

    async def relay(self: Outbox) -> int:
        ended.set()
        raise asyncio.CancelledError

    monkeypatch.setattr(Outbox, "relay", relay)
    yield ended


async def test_an_outbox_relay_ended_for_good_fails_the_liveness_probe(
    settings: ChorusSettings, relay_cancelled_from_within: asyncio.Event
) -> None:
    app, _ = await content_started_at_end(settings)
    async with running_app(app) as client:
        body = await eventually(lambda: not_live(client))
        assert body == {"status": "not live", "periodic job outbox-relay": "CancelledError"}
        assert relay_cancelled_from_within.is_set()


async def sharing_started_at_end(settings: ChorusSettings, spool: Path, **changes: Any) -> FastAPI:
    """The sharing service, its consumer group started at its topics' end."""
    prefix = f"{settings.consumer_group_prefix}-live-{uuid.uuid4().hex[:6]}"
    await skip_history(settings.kafka_bootstrap, f"{prefix}.sharing", [t.name for t in TOPICS])
    return sharing_app(sharing_settings(settings, spool, consumer_group_prefix=prefix, **changes))


def cancelled_once(monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> None:
    """`owner.name` lets out, once, a CancelledError that no one asked for (as a driver's own
    cancelled task can), then works as before."""
    original = getattr(owner, name)
    raised = False

    async def once(self: Any) -> Any:
        nonlocal raised
        if not raised:
            raised = True
            raise asyncio.CancelledError
        return await original(self)

    monkeypatch.setattr(owner, name, once)


@pytest.fixture
def shared_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """What shared/ logs (a service's start replaces the root logger's handlers, and with them
    caplog's)."""
    logger = logging.getLogger("shared")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


# Each loop of the click relay, and what it calls on every turn.
CLICK_RELAY_LOOPS = {
    "flush": (ClickSpool, "flush"),
    "backlog": (ClickRelay, "measure_backlog"),
    "drain": (ClickRelay, "drain_once"),
}


@pytest.mark.parametrize("loop", list(CLICK_RELAY_LOOPS))
async def test_a_click_relay_loop_ended_for_good_fails_the_liveness_probe(
    settings: ChorusSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    shared_log: pytest.LogCaptureFixture,
    loop: str,
) -> None:
    # Not a periodic job: the relay runs its loops itself (services/sharing/redirect/spool.py).
    cancelled_once(monkeypatch, *CLICK_RELAY_LOOPS[loop])
    app = await sharing_started_at_end(settings, tmp_path / "clicks.sqlite3")
    async with running_app(app) as client:
        body = await eventually(lambda: not_live(client))
        assert body == {"status": "not live", f"click relay {loop}": "CancelledError"}
        assert f"click relay {loop} ended for good" in shared_log.text  # with its trace, for the SRE


async def test_a_click_relay_process_that_exited_fails_the_liveness_probe_of_the_service_that_started_it(
    settings: ChorusSettings, tmp_path: Path, shared_log: pytest.LogCaptureFixture
) -> None:
    app = await sharing_started_at_end(settings, tmp_path / "clicks.sqlite3", click_relay_process=True)
    async with running_app(app) as client:
        alive = await client.get("/healthz")
        assert (alive.status_code, alive.json()) == (200, {"status": "ok"})
        # Killed, as the kernel's OOM killer would: the spool is drained no more.
        process: asyncio.subprocess.Process = app.state.relay_process
        process.kill()
        body = await eventually(lambda: not_live(client))
        assert body == {"status": "not live", "click relay process": "exited with status -9"}
    # The restart's stop does not try to end the process again (ProcessLookupError).
    assert [
        r.getMessage() for r in shared_log.records if r.name == "shared.app" and r.levelno >= logging.ERROR
    ] == []


async def test_a_click_relay_process_whose_drain_ended_for_good_exits_with_status_1(
    settings: ChorusSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    shared_log: pytest.LogCaptureFixture,
) -> None:
    # Its process (run here, in this one) has no probe: exiting is how the service learns of it.
    cancelled_once(monkeypatch, ClickRelay, "drain_once")
    loop = asyncio.get_running_loop()
    try:
        status = await run_relay_process(
            sharing_settings(settings, tmp_path / "clicks.sqlite3").model_dump_json()
        )
    finally:  # the handlers it set on this test session's loop
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    assert status == 1
    assert "click relay drain ended for good" in shared_log.text
