"""Recognition's fulfilment webhook, stored before every query named the organisation, is
adopted at start: it is still the one deliveries go to, and saving it again updates it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from services.recognition.rewards.store import MIGRATIONS, WEBHOOKS, RewardStore
from shared.migrations import migrate
from shared.mongo import Document
from shared.settings import DEV_WEBHOOK_SECRET_KEY, ChorusSettings
from shared.webhooks.engine import Target
from shared.webhooks.sealing import SecretBox
from tests.helpers import scratch_database

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(settings: ChorusSettings) -> AsyncIterator[AsyncDatabase[Document]]:
    async with scratch_database(settings, "recognition_migrations") as db:
        yield db


async def test_a_fulfilment_webhook_stored_without_its_org_is_adopted(db: AsyncDatabase[Document]) -> None:
    at = datetime.now(UTC)
    await db[WEBHOOKS].insert_one(
        {"_id": "org-a", "url": "https://x.example/h", "secret": "s1", "updated_at": at}
    )
    store = RewardStore(db, SecretBox([DEV_WEBHOOK_SECRET_KEY]))
    assert await store.webhook("org-a") is None  # unseen: the query names the org

    await migrate(db, MIGRATIONS)

    assert await store.webhook("org-a") == Target(url="https://x.example/h", secret="s1")
    await store.set_webhook("org-a", "https://y.example/h", "s2", at)
    assert await store.webhook("org-a") == Target(url="https://y.example/h", secret="s2")
    assert await db[WEBHOOKS].count_documents({}) == 1
