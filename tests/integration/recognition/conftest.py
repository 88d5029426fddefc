"""Fixtures for recognition's integration tests: one running app per module, and an event publisher."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from services.recognition.handlers import GROUP
from services.recognition.main import create_app
from services.recognition.settings import RecognitionSettings
from shared.events import TOPICS, Event, EventData
from shared.events.advocates import AdvocateEnrolled, NetworkAudience
from shared.events.clicks import ClickRecorded
from shared.events.conversions import LeadCaptured
from shared.events.shares import ShareMade
from shared.messaging import EventProducer, skip_history
from shared.settings import ChorusSettings
from tests.helpers import eventually, running_app


@pytest.fixture(scope="module")
async def recognition_settings(settings: ChorusSettings) -> RecognitionSettings:
    prefix = f"{settings.consumer_group_prefix}-{uuid.uuid4().hex[:6]}"
    await skip_history(settings.kafka_bootstrap, f"{prefix}.{GROUP}", [t.name for t in TOPICS])
    return RecognitionSettings(
        **{
            **settings.model_dump(),
            "consumer_group_prefix": prefix,
            "relay_every_s": 0.5,
            "relay_grace_s": 1.0,
            "leaderboard_max_age_s": 0.2,
            "webhook_every_s": 0.2,
            "webhook_backoff_base_s": 0.2,
        }
    )


@pytest.fixture(scope="module")
async def client(recognition_settings: RecognitionSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(create_app(settings=recognition_settings)) as c:
        yield c


def share_made(
    share_id: str,
    advocate_id: str,
    *,
    content_id: str = "c1",
    team: str | None = None,
    tags: list[str] | None = None,
) -> ShareMade:
    return ShareMade(
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
        self,
        advocate_id: str,
        team: str | None,
        *,
        public: bool = True,
        audience: int = 0,
        display_name: str | None = None,
        avatar_url: str | None = None,
    ) -> None:
        """As sharing announces them: a name only for one who lets colleagues see it."""
        await self.send(
            AdvocateEnrolled(
                advocate_id=advocate_id,
                team=team,
                public_ranking_consent=public,
                display_name=display_name,
                avatar_url=avatar_url,
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
        return await self.send(share_made(share_id, advocate_id, content_id=content_id, team=team, tags=tags))

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
        tracked: bool = True,
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
                    "tracked": tracked,
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


async def enrol_now(settings: ChorusSettings, org: str, *advocate_ids: str) -> None:
    """Announce these advocates as sharing does (kudos go only to enrolled colleagues), through
    a producer of their own, for helpers that have none."""
    producer = EventProducer(settings, client_id="recognition-tests-enrol")
    await producer.start()
    try:
        pub = publisher(producer, org)
        for advocate_id in advocate_ids:
            await pub.enrol(advocate_id, None)
    finally:
        await producer.stop()


async def kudos_once_enrolled(
    http: httpx.AsyncClient, url: str, giver: dict[str, str], to: str, message: str
) -> Any:
    """Give kudos, waiting for recognition to know the receiver (refused with 422 until then)."""

    async def given() -> Any:
        response = await http.post(f"{url}/v1/kudos", headers=giver, json={"to": to, "message": message})
        assert response.status_code in (201, 422), response.text
        return response.json() if response.status_code == 201 else None

    return await eventually(given, timeout_s=60)


def body(response: httpx.Response) -> Any:
    assert response.status_code < 400, response.text
    return response.json()
