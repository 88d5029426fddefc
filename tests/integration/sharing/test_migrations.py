"""Sharing's data written in earlier shapes: the settings projection (before every query named
the organisation) is adopted at start; a share made before its event id was kept still loads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from services.sharing.catalog.store import MIGRATIONS, ORG_SETTINGS, CatalogStore
from services.sharing.shares.store import SHARES, SharesStore
from shared.events.content import SettingsUpdated
from shared.migrations import migrate
from shared.mongo import Document
from shared.settings import ChorusSettings
from tests.helpers import scratch_database
from tests.integration.sharing.conftest import Sharing

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(settings: ChorusSettings) -> AsyncIterator[AsyncDatabase[Document]]:
    async with scratch_database(settings, "sharing_migrations") as db:
        yield db


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


async def test_a_share_stored_before_its_event_id_was_kept_still_redirects(
    db: AsyncDatabase[Document],
) -> None:
    at = datetime.now(UTC)
    old = {
        "_id": "s-old",
        "org": "org-a",
        "advocate_id": "ann",
        "content_id": "c1",
        "network": "linkedin",
        "code": "oldcode1",
        "short_url": "https://go.example/r/oldcode1",
        "target_url": "https://www.example.com/post",
        "status": "sent",
        "created_at": at,
    }
    await db[SHARES].insert_one(old)
    share = await SharesStore(db).by_code("oldcode1")
    assert share is not None
    assert (share.id, share.org, share.target_url, share.event_id) == (
        "s-old",
        "org-a",
        old["target_url"],
        "",
    )
