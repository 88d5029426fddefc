"""Sharing's settings projection written before every query named the organisation is adopted
at start: its rules still apply, and the next settings event updates it in place."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from services.sharing.catalog.store import MIGRATIONS, ORG_SETTINGS, CatalogStore
from shared.events.content import SettingsUpdated
from shared.migrations import migrate
from shared.mongo import Document, create_client
from shared.settings import ChorusSettings
from tests.integration.sharing.conftest import Sharing

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(settings: ChorusSettings) -> AsyncIterator[AsyncDatabase[Document]]:
    client = create_client(settings)
    name = settings.database_name(f"sharing_migrations_{uuid.uuid4().hex[:8]}")
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


async def test_settings_stored_without_their_org_are_adopted(db: AsyncDatabase[Document]) -> None:
    before = {
        "_id": "org-a",
        "blocked_words": ["spam"],
        "daily_share_limit": 3,
        "updated_at": datetime.now(UTC),
    }
    await db[ORG_SETTINGS].insert_one(before)
    store = CatalogStore(db)
    assert (await store.rules("org-a")).daily_share_limit is None  # unseen: the query names the org

    await migrate(db, MIGRATIONS)

    rules = await store.rules("org-a")
    assert (rules.blocked_words, rules.daily_share_limit) == (("spam",), 3)
    await store.save_settings(
        "org-a", SettingsUpdated(org_id="org-a", daily_share_limit=5), datetime.now(UTC)
    )
    assert (await store.rules("org-a")).daily_share_limit == 5
    assert await db[ORG_SETTINGS].count_documents({}) == 1


async def test_the_service_runs_its_migrations_at_start(sharing: Sharing, settings: ChorusSettings) -> None:
    db = sharing.app.state.runtime.db
    recorded = {d["_id"] async for d in db["migrations"].find({}, comment="cross-tenant: test")}
    assert {m.name for m in MIGRATIONS} <= recorded
