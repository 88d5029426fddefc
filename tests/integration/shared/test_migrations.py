"""One-off upgrades at start (shared/migrations.py), on the real local store: each runs once,
is recorded, and leaves data in the old shape nowhere."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from shared.migrations import MIGRATIONS, Migration, drop_index, migrate, rewrite
from shared.mongo import Document, create_client
from shared.settings import ChorusSettings

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(settings: ChorusSettings) -> AsyncIterator[AsyncDatabase[Document]]:
    """The database as a service sees it: its client's guard fails the test on a query without
    the org, unless it says why it spans organisations (as migrations do)."""
    client = create_client(settings.model_copy(update={"mongo_tenancy_check": True}), service=True)
    name = settings.database_name(f"migrations_{uuid.uuid4().hex[:8]}")
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


@pytest.fixture
async def look(
    settings: ChorusSettings, db: AsyncDatabase[Document]
) -> AsyncIterator[AsyncDatabase[Document]]:
    """The same database through the test's own (unguarded) client, to look at."""
    client = create_client(settings)
    try:
        yield client[db.name]
    finally:
        await client.close()


async def test_each_migration_runs_once_in_order_and_is_recorded(
    db: AsyncDatabase[Document], look: AsyncDatabase[Document]
) -> None:
    runs: list[str] = []

    async def note(name: str) -> str:
        runs.append(name)
        return "ok"

    first = [Migration("a", lambda _db: note("a")), Migration("b", lambda _db: note("b"))]
    assert await migrate(db, first) == ["a", "b"]
    assert await migrate(db, [*first, Migration("c", lambda _db: note("c"))]) == ["c"]
    assert runs == ["a", "b", "c"]
    assert {d["_id"] async for d in look[MIGRATIONS].find({})} == {"a", "b", "c"}


async def test_a_rewrite_changes_only_documents_in_the_old_shape(
    db: AsyncDatabase[Document], look: AsyncDatabase[Document]
) -> None:
    await look["things"].insert_many(
        [
            {"_id": "org-a:1", "old": True},
            {"_id": "org-b:2", "old": True},
            {"_id": "org-a:3", "org": "org-a", "kept": True},
        ]
    )
    backfill = rewrite(
        "things-get-their-org",
        "things",
        {"org": {"$exists": False}},
        [{"$set": {"org": {"$arrayElemAt": [{"$split": ["$_id", ":"]}, 0]}}}, {"$unset": "old"}],
    )
    assert await backfill.run(db) == 2
    assert await backfill.run(db) == 0  # a second replica's run changes nothing
    assert [d async for d in look["things"].find({}).sort("_id", ASCENDING)] == [
        {"_id": "org-a:1", "org": "org-a"},
        {"_id": "org-a:3", "org": "org-a", "kept": True},
        {"_id": "org-b:2", "org": "org-b"},
    ]


async def test_dropping_an_index_tolerates_its_absence(db: AsyncDatabase[Document]) -> None:
    await db["things"].create_index([("gone", ASCENDING)], name="gone_1")
    drop = drop_index("things", "gone_1")
    assert await drop.run(db) == "dropped"
    assert "gone_1" not in {i["name"] async for i in await db["things"].list_indexes()}
    assert await drop.run(db) == "absent"
    assert await drop_index("never_made", "x_1").run(db) == "absent"
