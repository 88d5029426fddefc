"""Bulk writes: ordered and unordered batches, upserts, and how a duplicate key is reported.

The stores use `insert_many(ordered=False)` (metrics index_clicks: a redelivered click is a
duplicate key, the rest of the batch must still be indexed) and `bulk_write` is what a batch
projector or a seeding tool reaches for next.
"""

from __future__ import annotations

import pytest
from pymongo import DeleteOne, InsertOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from shared.mongo import Document, is_duplicate_key


async def stored_ids(collection: AsyncCollection[Document]) -> list[str]:
    return sorted([str(d["_id"]) async for d in collection.find({}, {"_id": 1})])


async def test_unordered_insert_many_indexes_everything_but_the_duplicates(
    collection: AsyncCollection[Document],
) -> None:
    await collection.insert_many([{"_id": "k2"}, {"_id": "k4"}])
    with pytest.raises(BulkWriteError) as raised:
        await collection.insert_many([{"_id": f"k{i}"} for i in range(6)], ordered=False)
    details = raised.value.details
    assert details["nInserted"] == 4
    assert sorted(e["index"] for e in details["writeErrors"]) == [2, 4]
    assert {e["code"] for e in details["writeErrors"]} == {11000}
    assert is_duplicate_key(raised.value)
    assert await stored_ids(collection) == [f"k{i}" for i in range(6)]


async def test_an_unordered_bulk_write_applies_the_rest_and_reports_the_failure(
    collection: AsyncCollection[Document],
) -> None:
    await collection.insert_one({"_id": "taken", "n": 0})
    requests: list[InsertOne[Document] | UpdateOne] = [
        InsertOne({"_id": "a"}),
        InsertOne({"_id": "taken"}),
        UpdateOne({"_id": "taken"}, {"$inc": {"n": 1}}),
        InsertOne({"_id": "b"}),
    ]
    with pytest.raises(BulkWriteError) as raised:
        await collection.bulk_write(requests, ordered=False)
    details = raised.value.details
    assert [(e["index"], e["code"]) for e in details["writeErrors"]] == [(1, 11000)]
    assert (details["nInserted"], details["nModified"]) == (2, 1)
    assert await stored_ids(collection) == ["a", "b", "taken"]
    assert await collection.find_one({"_id": "taken"}) == {"_id": "taken", "n": 1}


async def test_an_ordered_bulk_write_stops_at_the_first_failure(
    collection: AsyncCollection[Document],
) -> None:
    await collection.insert_one({"_id": "taken"})
    requests = [InsertOne({"_id": "a"}), InsertOne({"_id": "taken"}), InsertOne({"_id": "b"})]
    with pytest.raises(BulkWriteError) as raised:
        await collection.bulk_write(requests, ordered=True)
    details = raised.value.details
    assert [(e["index"], e["code"]) for e in details["writeErrors"]] == [(1, 11000)]
    assert details["nInserted"] == 1
    assert await stored_ids(collection) == ["a", "taken"]


async def test_bulk_upserts_report_what_they_created_and_what_they_changed(
    collection: AsyncCollection[Document],
) -> None:
    await collection.insert_many([{"_id": "old", "n": 1}, {"_id": "gone"}, {"_id": "replaced", "v": 1}])
    result = await collection.bulk_write(
        [
            UpdateOne({"_id": "old"}, {"$inc": {"n": 1}}, upsert=True),
            UpdateOne({"_id": "new"}, {"$inc": {"n": 1}, "$setOnInsert": {"org": "o"}}, upsert=True),
            UpdateOne({"_id": "old"}, {"$set": {"n": 2}}),  # no change: matched, not modified
            ReplaceOne({"_id": "replaced"}, {"v": 2}),
            ReplaceOne({"_id": "fresh"}, {"v": 3}, upsert=True),
            DeleteOne({"_id": "gone"}),
        ],
        ordered=False,
    )
    assert result.upserted_ids == {1: "new", 4: "fresh"}
    assert (result.matched_count, result.modified_count, result.deleted_count) == (3, 2, 1)
    assert await collection.find({}).sort("_id").to_list() == [
        {"_id": "fresh", "v": 3},
        {"_id": "new", "n": 1, "org": "o"},
        {"_id": "old", "n": 2},
        {"_id": "replaced", "v": 2},
    ]
