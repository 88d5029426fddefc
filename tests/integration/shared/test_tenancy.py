"""Tenancy in one place (shared/tenancy.py), on the real local store: a tenant collection sees
only its organisation's documents, and the guard catches a query that forgets the org."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from shared.mongo import Document, create_client
from shared.settings import ChorusSettings
from shared.tenancy import TenancyGuard, Tenants, Unscoped

pytestmark = pytest.mark.integration


@pytest.fixture
async def guarded_db(settings: ChorusSettings) -> AsyncIterator[AsyncDatabase[Document]]:
    client = create_client(settings.model_copy(update={"mongo_tenancy_check": True}), service=True)
    try:
        yield client[settings.database_name(f"tenancy{uuid.uuid4().hex[:6]}")]
    finally:
        await client.close()


async def test_a_tenant_collection_sees_and_changes_only_its_organisation(
    guarded_db: AsyncDatabase[Document],
) -> None:
    tenants = Tenants(guarded_db)
    ours, theirs = tenants.of("org-a", "things"), tenants.of("org-b", "things")
    await ours.insert_one({"_id": "a1", "kind": "x"})
    await theirs.insert_one({"_id": "b1", "kind": "x"})

    assert [d["_id"] async for d in ours.find({"kind": "x"})] == ["a1"]
    assert await ours.find_one({"_id": "b1"}) is None
    assert await ours.count_documents({}) == 1
    assert [d["_id"] async for d in await ours.aggregate([{"$match": {"kind": "x"}}])] == ["a1"]
    # An update or delete through one organisation cannot reach the other's document.
    assert (await ours.update_one({"_id": "b1"}, {"$set": {"kind": "y"}})).matched_count == 0
    assert (await ours.delete_many({})).deleted_count == 1
    assert await theirs.find_one({"_id": "b1"}) == {"_id": "b1", "kind": "x", "org": "org-b"}
    # An upsert creates the document inside the organisation.
    await ours.update_one({"_id": "a2"}, {"$set": {"kind": "z"}}, upsert=True)
    assert (await ours.find_one({"_id": "a2"}) or {}).get("org") == "org-a"
    assert TenancyGuard.seen == []


async def test_a_query_naming_another_organisation_is_refused(guarded_db: AsyncDatabase[Document]) -> None:
    ours = Tenants(guarded_db).of("org-a", "things")
    with pytest.raises(ValueError, match="org-b"):
        await ours.find_one({"org": "org-b"})
    with pytest.raises(ValueError, match="org-b"):
        await ours.insert_one({"_id": "x", "org": "org-b"})


async def test_the_guard_catches_a_query_without_the_organisation(
    guarded_db: AsyncDatabase[Document],
) -> None:
    tenants = Tenants(guarded_db)
    await tenants.of("org-a", "things").insert_one({"_id": "a1"})

    await guarded_db["things"].find_one({"_id": "a1"})
    await guarded_db["things"].update_many({}, {"$set": {"seen": True}})
    await tenants.across("things", why="a test of the guard").find_one({"_id": "a1"})

    caught, TenancyGuard.seen[:] = list(TenancyGuard.seen), []
    collection = "things"
    database = guarded_db.name
    assert caught == [
        Unscoped(database, collection, "find", ("_id",)),
        Unscoped(database, collection, "update", ()),
    ]
