"""Metrics' settings written before every query named the organisation are adopted at start."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from services.metrics.org_settings.domain import EmvRates
from services.metrics.org_settings.store import MIGRATIONS, ORG_SETTINGS, OrgSettingsStore
from shared.migrations import migrate
from shared.mongo import Document, create_client
from shared.settings import ChorusSettings

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(settings: ChorusSettings) -> AsyncIterator[AsyncDatabase[Document]]:
    client = create_client(settings)
    name = settings.database_name(f"metrics_migrations_{uuid.uuid4().hex[:8]}")
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


async def test_settings_stored_without_their_org_are_adopted(db: AsyncDatabase[Document]) -> None:
    await db[ORG_SETTINGS].insert_one({"_id": "org-a", "cpc": "0.50", "cpm": "4", "currency": "EUR"})
    store = OrgSettingsStore(db)
    assert (await store.get("org-a")).rates.currency == "USD"  # unseen: the query names the org

    await migrate(db, MIGRATIONS)

    assert (await store.get("org-a")).rates == EmvRates(Decimal("0.50"), Decimal("4"), "EUR")
    await store.set_attribution_window("org-a", 14)
    assert (await store.get("org-a")).attribution_window_days == 14
    assert await db[ORG_SETTINGS].count_documents({}) == 1
