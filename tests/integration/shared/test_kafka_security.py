"""Kafka over SASL_SSL and mTLS on the real broker: who connects, and what the authorizer allows.

The test stack's broker has the listeners production has: SASL_SSL (SCRAM-SHA-512) and SSL with
client certificates, both from the stack's own CA, and ACLs generated from the topic catalog and
the consumer map (devtools/kafka_access.py). Each service is its own principal.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka.errors import GroupAuthorizationFailedError, KafkaConnectionError, TopicAuthorizationFailedError

from devtools import local_stack
from shared.events import Event
from shared.events.topics import CLICKS, TRAINING
from shared.events.training import PolicyAcknowledged
from shared.messaging import ConsumerRunner, EventProducer, Subscription, ensure_topics, kafka_security
from shared.messaging.replay import TopicRange
from shared.settings import ChorusSettings
from shared.vault import Vault
from tests.helpers import new_org

pytestmark = pytest.mark.integration


def as_service(
    stack: local_stack.StackConfig, principal: str, *, mtls: bool = False, **overrides: str
) -> ChorusSettings:
    """Settings a service deployed with its own credentials would have."""
    env = stack.kafka_client_env(principal, mtls=mtls) | overrides
    options = {name.removeprefix("CHORUS_").lower(): value for name, value in env.items()}
    # The producer seals events with the person vault, in the stack's MongoDB.
    mongo = f"mongodb://127.0.0.1:{stack.mongo_port}/"
    return ChorusSettings(
        service_name=principal, mongo_url=mongo, mongo_db_prefix="kafka_security", **options
    )


@pytest.fixture(autouse=True)
async def topics(settings: ChorusSettings) -> None:
    # Created as a service does locally, on the plain listener; no service principal may create.
    await ensure_topics(settings.kafka_bootstrap)


@pytest.fixture
async def started() -> AsyncIterator[list[EventProducer]]:
    producers: list[EventProducer] = []
    yield producers
    for producer in producers:
        await producer.stop()


async def start(producers: list[EventProducer], settings: ChorusSettings) -> EventProducer:
    producer = EventProducer(settings)
    producers.append(producer)
    await producer.start()
    return producer


def acknowledgement(org: str) -> Event[PolicyAcknowledged]:
    return Event.create(PolicyAcknowledged(advocate_id="ann", policy_version=3), tenant=org, source="/tests")


async def read_back(settings: ChorusSettings, topic: str, org: str, since: datetime) -> list[Event[object]]:
    vault = Vault(settings)  # people are read back as a service's consumer reads them
    records = TopicRange(
        settings.kafka_bootstrap, [topic], since=since, security=kafka_security(settings), vault=vault
    )
    try:
        return [
            item.event
            async for batch in records.batches()
            for item in batch.items
            if item.event.tenant == org
        ]
    finally:
        await vault.close()


@pytest.mark.parametrize("mtls", [False, True], ids=["sasl_ssl", "mtls"])
async def test_a_service_publishes_and_another_reads_back_over_an_authenticated_listener(
    stack: local_stack.StackConfig, started: list[EventProducer], mtls: bool
) -> None:
    org, since = new_org(), datetime.now(UTC) - timedelta(seconds=5)
    content = as_service(stack, "content", mtls=mtls)  # writes chorus.training
    recognition = as_service(stack, "recognition", mtls=mtls)  # consumes it
    sent = acknowledgement(org)

    producer = await start(started, content)
    await producer.publish(sent)

    assert await read_back(recognition, TRAINING.name, org, since) == [sent]


async def test_a_wrong_password_is_refused(
    stack: local_stack.StackConfig, started: list[EventProducer], caplog: pytest.LogCaptureFixture
) -> None:
    await start(started, as_service(stack, "content"))  # the right one connects

    wrong = as_service(stack, "content", CHORUS_KAFKA_SASL_PASSWORD="not-the-password")
    with caplog.at_level(logging.ERROR, logger="aiokafka"), pytest.raises(KafkaConnectionError):
        await start(started, wrong)

    assert "SaslAuthenticationFailed" in caplog.text


async def test_a_client_certificate_the_ca_did_not_sign_is_refused(
    stack: local_stack.StackConfig, started: list[EventProducer], tmp_path: Path
) -> None:
    await start(started, as_service(stack, "content", mtls=True))  # the stack CA's CN=content connects
    # The same name, signed by a CA the broker does not trust.
    local_stack.make_certificates(tmp_path, ["content"], ca_name="Not the Chorus CA")
    impostor = as_service(
        stack,
        "content",
        mtls=True,
        CHORUS_KAFKA_SSL_CERTFILE=str(tmp_path / "content.crt"),
        CHORUS_KAFKA_SSL_KEYFILE=str(tmp_path / "content.key"),
    )

    with pytest.raises(KafkaConnectionError):
        await start(started, impostor)


@pytest.mark.parametrize("mtls", [False, True], ids=["sasl_ssl", "mtls"])
async def test_a_service_writing_another_services_topic_is_refused_by_the_authorizer(
    stack: local_stack.StackConfig, started: list[EventProducer], mtls: bool
) -> None:
    # chorus.training is content's; sharing may read some of content's topics but write none.
    producer = await start(started, as_service(stack, "sharing", mtls=mtls))

    with pytest.raises(TopicAuthorizationFailedError):
        await producer.publish(acknowledgement(new_org()))


async def test_a_service_reading_a_topic_it_does_not_consume_is_refused_by_the_authorizer(
    stack: local_stack.StackConfig,
) -> None:
    # content consumes advocates and shares, never clicks.
    content = as_service(stack, "content")

    with pytest.raises(TopicAuthorizationFailedError):
        await read_back(content, CLICKS.name, new_org(), datetime.now(UTC))


async def test_a_service_joining_another_services_consumer_group_is_refused_by_the_authorizer(
    stack: local_stack.StackConfig, started: list[EventProducer]
) -> None:
    # sharing may read chorus.training (it consumes policy acknowledgements), but only through
    # its own group: recognition's group, and its committed offsets, are recognition's.
    sharing = as_service(stack, "sharing", CHORUS_CONSUMER_GROUP_PREFIX="chorus")
    subscription = Subscription(group="recognition")

    @subscription.on(PolicyAcknowledged)
    async def ignore(event: Event[PolicyAcknowledged]) -> None:
        pass

    runner = ConsumerRunner(sharing, subscription, await start(started, sharing))
    with pytest.raises(GroupAuthorizationFailedError):
        await runner.start()
