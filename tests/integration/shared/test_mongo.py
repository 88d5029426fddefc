"""Single-document update patterns on the real local store (SecantusDB, MongoDB's behaviour)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
from pymongo.errors import DuplicateKeyError

from shared.mongo import applied_once_filter, create_client, mark_applied
from shared.settings import ChorusSettings

pytestmark = pytest.mark.integration


async def test_concurrent_updates_of_one_document_are_all_applied(settings: ChorusSettings) -> None:
    # Through the driver's normal pool, as in production: concurrent updates are isolated.
    client = create_client(settings)
    try:
        collection = client[settings.database_name("mongo_tests")]["counters"]
        doc_id = uuid.uuid4().hex
        await collection.insert_one({"_id": doc_id, "n": 0, "balance": 50})
        await asyncio.gather(*[collection.update_one({"_id": doc_id}, {"$inc": {"n": 1}}) for _ in range(50)])
        spends = await asyncio.gather(
            *[
                collection.update_one({"_id": doc_id, "balance": {"$gte": 20}}, {"$inc": {"balance": -20}})
                for _ in range(6)
            ]
        )
        doc = await collection.find_one({"_id": doc_id})
        assert doc is not None
        assert doc["n"] == 50
        assert sum(r.modified_count for r in spends) == 2
        assert doc["balance"] == 10
    finally:
        await client.close()


async def test_an_event_applied_twice_changes_the_document_once(settings: ChorusSettings) -> None:
    client = create_client(settings)
    try:
        collection = client[settings.database_name("mongo_tests")]["applied"]
        doc_id = uuid.uuid4().hex
        for event_id in ["e1", "e2", "e1", "e2", "e3"]:
            # A duplicate key means the upsert found the document but not the filter: applied.
            with contextlib.suppress(DuplicateKeyError):
                await collection.update_one(
                    {"_id": doc_id, **applied_once_filter(event_id)},
                    {"$inc": {"n": 1}, "$push": mark_applied(event_id)},
                    upsert=True,
                )
        doc = await collection.find_one({"_id": doc_id})
        assert doc is not None
        assert doc["n"] == 3
    finally:
        await client.close()
