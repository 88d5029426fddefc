"""Deliveries that metrics and recognition queued before the shared webhook engine are adopted
into its shape by a migration at start: none is lost, and the dispatcher can send them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from services.metrics.webhooks.store import MIGRATIONS as METRICS_MIGRATIONS
from services.recognition.rewards.domain import FULFILMENT
from services.recognition.rewards.store import MIGRATIONS as RECOGNITION_MIGRATIONS
from shared.mongo import Document
from shared.settings import ChorusSettings
from shared.webhooks.engine import DELIVERIES, INDEXES, DeliveryStore
from shared.webhooks.policy import State
from tests.helpers import scratch_database

pytestmark = pytest.mark.integration

QUEUED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
[METRICS_ADOPTION] = [m for m in METRICS_MIGRATIONS if "deliveries" in m.name]
[RECOGNITION_ADOPTION] = [m for m in RECOGNITION_MIGRATIONS if "deliveries" in m.name]


@pytest.fixture
async def db(settings: ChorusSettings) -> AsyncIterator[AsyncDatabase[Document]]:
    async with scratch_database(settings, "webhook_upgrade", INDEXES) as db:
        yield db


async def test_a_metrics_delivery_queued_before_the_engine_is_adopted_and_sendable(
    db: AsyncDatabase[Document],
) -> None:
    await db[DELIVERIES].insert_one(
        {
            "_id": "d1",
            "org": "org-a",
            "endpoint_id": "ep1",
            "event_id": "ev1",
            "event_type": "chorus.share.made",
            "event_time": QUEUED,
            "replay_id": None,
            "body": '{"id": "ev1"}',
            "state": "pending",
            "attempts": 1,
            "next_attempt_at": QUEUED,
            "created_at": QUEUED,
        }
    )
    store = DeliveryStore(db)

    assert await METRICS_ADOPTION.run(db) == 1
    assert await METRICS_ADOPTION.run(db) == 0  # once only

    delivery = await store.claim_due(QUEUED + timedelta(minutes=1), QUEUED + timedelta(minutes=5), 3)
    assert delivery is not None
    assert (delivery.id, delivery.org, delivery.target, delivery.body) == (
        "d1",
        "org-a",
        "ep1",
        '{"id": "ev1"}',
    )
    assert delivery.state == State.PENDING
    assert delivery.meta == {
        "event_id": "ev1",
        "event_type": "chorus.share.made",
        "event_time": QUEUED,
        "replay_id": None,
    }
    stored = await db[DELIVERIES].find_one({"_id": "d1"})
    assert stored is not None and "endpoint_id" not in stored and "event_id" not in stored


async def test_a_fulfilment_delivery_queued_before_the_engine_is_adopted_and_listed(
    db: AsyncDatabase[Document],
) -> None:
    await db[DELIVERIES].insert_one(
        {
            "_id": "f1",
            "org": "org-a",
            "url": "https://rewards.example.com/hook",
            "payload_json": '{"redemption_id": "r1"}',
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": QUEUED,
            "created_at": QUEUED,
        }
    )
    store = DeliveryStore(db)

    assert await RECOGNITION_ADOPTION.run(db) == 1
    # The metrics conversion does not touch recognition's shape, nor the reverse.
    assert await METRICS_ADOPTION.run(db) == 0

    [listed] = await store.list("org-a", FULFILMENT, 10)
    assert (listed.id, listed.target, listed.body) == ("f1", FULFILMENT, '{"redemption_id": "r1"}')
    assert await store.list("org-b", FULFILMENT, 10) == []
