"""Fixtures for recognition's integration tests: one running app per module, and an event publisher."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.recognition.handlers import GROUP
from services.recognition.main import create_app
from services.recognition.settings import RecognitionSettings
from shared.events import TOPICS, Event, EventData
from shared.events.advocates import AdvocateEnrolled, NetworkAudience
from shared.events.clicks import ClickRecorded
from shared.events.conversions import LeadCaptured
from shared.events.shares import ShareMade
from shared.messaging import EventProducer, ensure_topics
from shared.settings import ChorusSettings
from tests.helpers import running_app


async def start_group_at_end(bootstrap: str, group_id: str) -> None:
    """Commit the current end of every topic for a new consumer group.

    The shared test broker holds other people's history (tens of thousands of clicks from load
    runs); a new group would replay all of it from the earliest offset before reaching our events.
    """
    await ensure_topics(bootstrap)  # on a fresh broker no service has created them yet
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic.name, p) for topic in TOPICS for p in range(topic.partitions)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.commit(dict(ends))
    finally:
        await consumer.stop()


@pytest.fixture(scope="module")
async def recognition_settings(settings: ChorusSettings) -> RecognitionSettings:
    prefix = f"{settings.consumer_group_prefix}-{uuid.uuid4().hex[:6]}"
    await start_group_at_end(settings.kafka_bootstrap, f"{prefix}.{GROUP}")
    return RecognitionSettings(
        **{
            **settings.model_dump(),
            "consumer_group_prefix": prefix,
            "relay_every_s": 0.5,
            "relay_grace_s": 1.0,
            "webhook_every_s": 0.2,
            "webhook_backoff_base_s": 0.2,
        }
    )


@pytest.fixture(scope="module")
async def client(recognition_settings: RecognitionSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(create_app(settings=recognition_settings)) as c:
        yield c


class Publisher:
    """Publishes real events on the broker and remembers them, so a test can send them again."""

    def __init__(self, producer: EventProducer, org: str) -> None:
        self.producer = producer
        self.org = org
        self.sent: list[Event[EventData]] = []

    async def send(self, data: EventData, *, event_id: str | None = None) -> Event[EventData]:
        event: Event[EventData] = Event.create(
            data, tenant=self.org, source="/tests", event_id=event_id or str(uuid.uuid4())
        )
        await self.producer.publish(event)
        self.sent.append(event)
        return event

    async def resend_all(self) -> None:
        await self.producer.publish_many(self.sent)

    async def enrol(
        self, advocate_id: str, team: str | None, *, public: bool = True, audience: int = 0
    ) -> None:
        await self.send(
            AdvocateEnrolled(
                advocate_id=advocate_id,
                team=team,
                public_ranking_consent=public,
                networks=[NetworkAudience(network="linkedin", audience_size=audience)],
            )
        )

    async def share(
        self,
        share_id: str,
        advocate_id: str,
        *,
        content_id: str = "c1",
        team: str | None = None,
        tags: list[str] | None = None,
    ) -> Event[EventData]:
        return await self.send(
            ShareMade(
                share_id=share_id,
                advocate_id=advocate_id,
                content_id=content_id,
                network="linkedin",
                code=share_id,
                short_url=f"https://ch.rs/{share_id}",
                target_url="https://example.com/a",
                team=team,
                tags=tags or [],
                shared_at=datetime.now(UTC),
            )
        )

    async def click(
        self,
        share_id: str,
        advocate_id: str,
        *,
        bot: bool = False,
        self_click: bool = False,
        unique: bool = True,
        click_id: str | None = None,
        team: str | None = None,
    ) -> Event[EventData]:
        return await self.send(
            ClickRecorded.model_validate(
                {
                    "click_id": click_id or f"k-{uuid.uuid4().hex[:8]}",
                    "share_id": share_id,
                    "advocate_id": advocate_id,
                    "content_id": "c1",
                    "network": "linkedin",
                    "clicked_at": datetime.now(UTC),
                    "bot": bot,
                    "unique": unique,
                    "self": self_click,
                    "team": team,
                }
            )
        )

    async def lead(self, conversion_id: str, advocate_id: str, share_id: str) -> Event[EventData]:
        return await self.send(
            LeadCaptured(
                conversion_id=conversion_id,
                key=share_id,
                customer_id=f"cust-{conversion_id}",
                attributed=True,
                share_id=share_id,
                advocate_id=advocate_id,
                content_id="c1",
                converted_at=datetime.now(UTC),
            )
        )


@pytest.fixture(scope="module")
async def producer(settings: ChorusSettings) -> AsyncIterator[EventProducer]:
    p = EventProducer(settings, client_id="recognition-tests")
    await p.start()
    yield p
    await p.stop()


def publisher(producer: EventProducer, org: str) -> Publisher:
    return Publisher(producer, org)


def body(response: httpx.Response) -> Any:
    assert response.status_code < 400, response.text
    return response.json()
