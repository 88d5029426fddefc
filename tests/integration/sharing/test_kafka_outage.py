"""No click is lost while Kafka is down: the spool keeps them until the broker is back.

This test runs its own Kafka broker (devtools.local_stack on private ports and state dir) so that it
can stop and restart it without touching the stack other tests use. MongoDB is the shared one.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from devtools import local_stack
from services.sharing.main import create_app
from services.sharing.redirect import spool as spool_module
from shared.events import Event, EventData, decode
from shared.events.clicks import CLICK_ID_PARAM
from shared.events.topics import CLICKS
from shared.messaging import EventProducer, skip_history
from shared.settings import ChorusSettings
from tests.helpers import eventually, new_org, running_app, tap
from tests.integration.sharing.conftest import MovableClock, Sharing, sharing_settings
from tests.integration.sharing.test_shares_and_redirect import BROWSER_UA, make_share, visit
from tests.ports import free_port_block

pytestmark = pytest.mark.integration

CLICKS_DURING_OUTAGE = 40


@pytest.fixture(scope="module")
def private_kafka() -> Iterator[local_stack.StackConfig]:
    state = Path(tempfile.mkdtemp(prefix="chorus-sharing-kafka-"))
    # Free ports, not fixed ones: another checkout's run of this test may be running.
    base = free_port_block(8)
    config = local_stack.StackConfig(
        state_dir=state,
        kafka_port=base,
        kafka_controller_port=base + 1,
        kafka_sasl_port=base + 2,
        kafka_tls_port=base + 3,
        # Only Kafka runs here; the other ports just have to differ.
        mongo_port=base + 4,
        otlp_grpc_port=base + 5,
        otlp_http_port=base + 6,
        jaeger_ui_port=base + 7,
    )
    local_stack.start_part("kafka", config, timeout=120)
    try:
        yield config
    finally:
        local_stack.stop_part("kafka", config)
        shutil.rmtree(state, ignore_errors=True)


async def read_all_clicks(bootstrap: str, org: str, expected: int) -> list[Event[EventData]]:
    """Every click of `org` on the (private) clicks topic, from the beginning."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(CLICKS.name, p) for p in range(CLICKS.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        found: list[Event[EventData]] = []
        quiet_polls = 0
        # Read until the expected number arrived and then 10 more empty polls (2 s) for extras.
        for _ in range(600):
            batch = await consumer.getmany(timeout_ms=200)
            records = [r for rs in batch.values() for r in rs]
            found += [e for e in map(decode, (r.value for r in records)) if e.tenant == org]
            quiet_polls = 0 if records else quiet_polls + 1
            if len(found) >= expected and quiet_polls >= 10:
                break
        return found
    finally:
        await consumer.stop()


@pytest.fixture
def relay_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """What the click relay logs (a service's start replaces the root logger's handlers, and with
    them caplog's)."""
    logger = logging.getLogger(spool_module.__name__)
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


async def test_clicks_made_while_kafka_is_down_all_arrive_once_it_is_back(
    settings: ChorusSettings,
    private_kafka: local_stack.StackConfig,
    tmp_path: Path,
    relay_log: pytest.LogCaptureFixture,
) -> None:
    kafka_settings = settings.model_copy(update={"kafka_bootstrap": private_kafka.kafka_bootstrap})
    app_settings = sharing_settings(
        kafka_settings, tmp_path / "clicks.sqlite3", consumer_group_prefix=f"outage-{uuid.uuid4().hex[:6]}"
    )
    app = create_app(app_settings)
    producer = EventProducer(kafka_settings, client_id="sharing-outage-test")
    org = new_org()
    async with running_app(app) as client:
        await producer.start()
        sharing = Sharing(client, app_settings, producer, MovableClock(), app)
        try:
            await sharing.enrol(org, "adv-1")
            share = await make_share(sharing, org, "adv-1")
        finally:
            await producer.stop()

        local_stack.stop_part("kafka", private_kafka)
        responses = [
            await visit(sharing, share["code"], {"User-Agent": BROWSER_UA}, ip=f"198.51.100.{i}")
            for i in range(CLICKS_DURING_OUTAGE)
        ]
        assert [r.status_code for r in responses] == [302] * CLICKS_DURING_OUTAGE
        click_ids = {parse_qs(urlsplit(r.headers["location"]).query)[CLICK_ID_PARAM][0] for r in responses}
        relay = app.state.relay
        await relay.spool.flush()
        assert await relay.spool.count() == CLICKS_DURING_OUTAGE  # waiting on disk, none sent

        # Readiness during the outage: the service needs no broker to answer (clicks wait in the
        # spool, events in the outbox), so it stays in its Service.
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.json()
        assert ready.json()["checks"]["mongodb"] == "ok"
        # Nor is it restarted: the relay, failing to publish, waits the outage out (its loops
        # ending would fail the liveness probe).
        await eventually(lambda: "click spool: publishing failed" in relay_log.text)
        alive = await client.get("/healthz")
        assert (alive.status_code, alive.json()) == (200, {"status": "ok"})

        local_stack.start_part("kafka", private_kafka, timeout=120)
        events = await read_all_clicks(private_kafka.kafka_bootstrap, org, CLICKS_DURING_OUTAGE)

    assert len(events) == CLICKS_DURING_OUTAGE
    assert {e.data.click_id for e in events} == click_ids  # type: ignore[attr-defined]


async def test_a_relay_process_beside_the_service_drains_the_spool(
    settings: ChorusSettings, tmp_path: Path
) -> None:
    group_prefix = f"relay-{uuid.uuid4().hex[:6]}"
    app_settings = sharing_settings(
        settings, tmp_path / "clicks.sqlite3", click_relay_process=True, consumer_group_prefix=group_prefix
    )
    await skip_history(
        settings.kafka_bootstrap,
        f"{group_prefix}.sharing",
        ["chorus.content", "chorus.training", "chorus.advocates"],
    )
    app = create_app(app_settings)
    producer = EventProducer(settings, client_id="sharing-relay-test")
    org = new_org()
    await producer.start()
    try:
        async with running_app(app) as client:
            sharing = Sharing(client, app_settings, producer, MovableClock(), app)
            await sharing.enrol(org, "adv-1")
            share = await make_share(sharing, org, "adv-1")
            async with tap(settings, CLICKS.name) as clicks:
                responses = [
                    await visit(sharing, share["code"], {"User-Agent": BROWSER_UA}) for _ in range(5)
                ]
                events = await clicks.collect(lambda e: e.tenant == org, count=5, settle_s=0.5)
    finally:
        await producer.stop()
    sent = {parse_qs(urlsplit(r.headers["location"]).query)[CLICK_ID_PARAM][0] for r in responses}
    assert {e.id for e in events} == sent
    assert app.state.relay.published == 0  # the service's own task did not drain: the process did
