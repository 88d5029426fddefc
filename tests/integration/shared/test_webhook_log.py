"""The delivery log keeps an ended delivery for KEPT_FOR (a TTL index on `expires_at`) and a
pending one until it ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from shared.clock import utc_now
from shared.mongo import Document
from shared.settings import ChorusSettings
from shared.webhooks import policy
from shared.webhooks.engine import DELIVERIES, INDEXES, KEPT_FOR, Attempt, Delivery, DeliveryStore
from shared.webhooks.policy import State
from tests.helpers import scratch_database

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(settings: ChorusSettings) -> AsyncIterator[AsyncDatabase[Document]]:
    async with scratch_database(settings, "webhook_log", INDEXES) as db:
        yield db


def delivery(delivery_id: str) -> Delivery:
    at = utc_now()
    return Delivery(delivery_id, "org-a", "ep1", "https://example.com/h", "{}", State.PENDING, 0, at, at)


async def test_ended_deliveries_expire_after_the_retention_and_pending_ones_never(
    db: AsyncDatabase[Document],
) -> None:
    store = DeliveryStore(db)
    for delivery_id in ("retried", "delivered", "failed", "cancelled"):
        await store.add(delivery(delivery_id))
    at = utc_now()
    failure = Attempt(at, 503, None, 12)
    await store.record(delivery("retried"), failure, policy.Outcome(State.PENDING, at + timedelta(seconds=5)))
    success = Attempt(at, 200, None, 9)
    await store.record(delivery("delivered"), success, policy.Outcome(State.DELIVERED, None))
    await store.record(delivery("failed"), failure, policy.Outcome(State.FAILED, None))
    await store.cancel_pending("org-a", "ep1")  # takes "retried" and "cancelled", both pending

    expiry = {d["_id"]: d.get("expires_at") async for d in db[DELIVERIES].find({})}
    assert set(expiry) == {"retried", "delivered", "failed", "cancelled"}
    for delivery_id, expires_at in expiry.items():
        assert expires_at is not None, delivery_id
        assert at + KEPT_FOR - timedelta(minutes=1) <= expires_at <= utc_now() + KEPT_FOR, delivery_id

    await store.add(delivery("waiting"))
    assert (await db[DELIVERIES].find_one({"_id": "waiting"}) or {}).get("expires_at", "none") == "none"
    ttl = {i["name"]: i.get("expireAfterSeconds") async for i in await db[DELIVERIES].list_indexes()}
    assert ttl["expires_at_1"] == 0
