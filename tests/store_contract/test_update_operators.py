"""The update operators the stores use, with the results MongoDB gives.

Each test names where the code relies on the operator. Several of these are what the previous
local store got wrong (a `$slice` or a `$pull` condition ignored, empty arrays dropped from
`$setOnInsert`), which the code used to work around.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pymongo.asynchronous.collection import AsyncCollection

from shared.mongo import APPLIED_WINDOW, Document, applied_once_filter, mark_applied
from shared.outbox import OUTBOX, OUTBOX_SINCE, queue


async def test_push_each_with_slice_keeps_the_latest_window(collection: AsyncCollection[Document]) -> None:
    # shared.mongo mark_applied: the applied-event window of a document stays bounded.
    await collection.insert_one({"_id": "doc", "applied_events": []})
    for i in range(APPLIED_WINDOW + 30):
        await collection.update_one({"_id": "doc"}, {"$push": mark_applied(f"e{i}")})
    doc = await collection.find_one({"_id": "doc"})
    assert doc is not None
    assert doc["applied_events"] == [f"e{i}" for i in range(30, APPLIED_WINDOW + 30)]


async def test_push_each_with_slice_in_an_upsert_creates_the_window(
    collection: AsyncCollection[Document],
) -> None:
    # recognition _apply_once, metrics apply (by event id): the first event creates the document.
    await collection.update_one(
        {"_id": "doc", **applied_once_filter("e1")},
        {"$inc": {"n": 1}, "$push": mark_applied("e1")},
        upsert=True,
    )
    await collection.update_one(
        {"_id": "doc"},
        {"$push": {"applied_events": {"$each": ["e2", "e3", "e4"], "$slice": -3}}},
        upsert=True,
    )
    assert await collection.find_one({"_id": "doc"}) == {
        "_id": "doc",
        "n": 1,
        "applied_events": ["e2", "e3", "e4"],
    }


async def test_push_each_appends_in_order_and_creates_a_missing_array(
    collection: AsyncCollection[Document],
) -> None:
    # shared/outbox.py queue: events queued in the write that changes the state.
    await collection.insert_one({"_id": "item"})
    await collection.update_one({"_id": "item"}, {"$push": {"outbox": {"$each": ["a", "b"]}}})
    await collection.update_one({"_id": "item"}, {"$push": {"outbox": {"$each": ["c"]}}})
    assert await collection.find_one({"_id": "item"}) == {"_id": "item", "outbox": ["a", "b", "c"]}


async def test_pull_removes_values_and_subdocuments_matching_a_condition(
    collection: AsyncCollection[Document],
) -> None:
    # A value pulled from a list; metrics erase_customer_touches pulls the touches of one
    # advocate from every customer, in one update_many.
    touches = [{"advocate_id": "a", "at": 1}, {"advocate_id": "b", "at": 2}, {"advocate_id": "a", "at": 3}]
    await collection.insert_many(
        [
            {"_id": "r", "unpublished": ["approved", "fulfilled", "approved"]},
            {"_id": "c1", "org": "o", "touches": touches},
            {"_id": "c2", "org": "o", "touches": [{"advocate_id": "a", "at": 4}]},
            {"_id": "c3", "org": "p", "touches": [{"advocate_id": "a", "at": 5}]},
        ]
    )
    await collection.update_one({"_id": "r"}, {"$pull": {"unpublished": "approved"}})
    result = await collection.update_many(
        {"org": "o", "touches.advocate_id": "a"}, {"$pull": {"touches": {"advocate_id": "a"}}}
    )
    assert result.modified_count == 2
    docs = {d["_id"]: d for d in await collection.find({}).to_list()}
    assert docs["r"]["unpublished"] == ["fulfilled"]
    assert docs["c1"]["touches"] == [{"advocate_id": "b", "at": 2}]
    assert docs["c2"]["touches"] == []
    assert docs["c3"]["touches"] == [{"advocate_id": "a", "at": 5}]


async def test_add_to_set_adds_each_value_once(collection: AsyncCollection[Document]) -> None:
    # recognition badges and courses, content completed_module_ids, sharing completed_course_ids.
    for course in ("c1", "c2", "c1", "c3", "c2"):
        await collection.update_one({"_id": "advocate"}, {"$addToSet": {"courses": course}}, upsert=True)
    assert await collection.find_one({"_id": "advocate"}) == {
        "_id": "advocate",
        "courses": ["c1", "c2", "c3"],
    }


async def test_set_on_insert_keeps_nulls_and_empty_values_and_applies_only_on_insert(
    collection: AsyncCollection[Document],
) -> None:
    # recognition _new_account and remember_share: a new document's fields, empty ones included.
    on_insert: Document = {"org": "o", "verified_by": None, "badges": [], "counters": {}, "balance": 0}
    await collection.update_one(
        {"_id": "account"}, {"$setOnInsert": on_insert, "$inc": {"n": 1}}, upsert=True
    )
    assert await collection.find_one({"_id": "account"}) == {"_id": "account", **on_insert, "n": 1}
    await collection.update_one(
        {"_id": "account"},
        {"$setOnInsert": {**on_insert, "verified_by": "x", "badges": ["b"]}, "$inc": {"n": 1}},
        upsert=True,
    )
    assert await collection.find_one({"_id": "account"}) == {"_id": "account", **on_insert, "n": 2}


async def test_an_upsert_seeds_the_new_document_from_the_filter_equalities(
    collection: AsyncCollection[Document],
) -> None:
    # recognition daily_grant: `{_id, points: used, grants.<entry>: {$exists: false}}` creates
    # the day's document with `points` taken from the filter, then applies `$inc`.
    await collection.update_one(
        {"_id": "day", "points": 0, "grants.e1": {"$exists": False}},
        {"$inc": {"points": 5}, "$set": {"grants.e1": 5}, "$setOnInsert": {"org": "o"}},
        upsert=True,
    )
    assert await collection.find_one({"_id": "day"}) == {
        "_id": "day",
        "points": 5,
        "grants": {"e1": 5},
        "org": "o",
    }


async def test_max_and_min_keep_the_extreme_and_set_a_missing_field(
    collection: AsyncCollection[Document],
) -> None:
    # $max: sharing acknowledged_policy_version, recognition counters.<name>, metrics
    # last_shared_at and the offset watermarks wm.<source>. $min: shared/outbox.py queue keeps
    # outbox_since at the oldest pending event.
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    await collection.insert_one({"_id": "doc", "version": 3, "last_shared_at": t0, "counters": {}})
    await collection.update_one(
        {"_id": "doc"},
        {
            "$max": {
                "version": 2,
                "last_shared_at": t0 + timedelta(hours=1),
                "counters.streak": 4,
                "wm.p0": 7,
            },
            "$min": {"first_seen": 9, "lowest": 5},
        },
    )
    await collection.update_one(
        {"_id": "doc"},
        {"$max": {"version": 5, "counters.streak": 2, "wm.p0": 3}, "$min": {"first_seen": 4, "lowest": 8}},
    )
    assert await collection.find_one({"_id": "doc"}) == {
        "_id": "doc",
        "version": 5,
        "last_shared_at": t0 + timedelta(hours=1),
        "counters": {"streak": 4},
        "wm": {"p0": 7},
        "first_seen": 4,
        "lowest": 5,
    }


async def test_inc_on_dotted_paths_builds_nested_counters_and_unset_removes_one(
    collection: AsyncCollection[Document],
) -> None:
    # metrics apply: `counts.<dim>.<encoded key>.<counter>` created and incremented in one
    # update; delete_advocate_stats unsets one advocate's counters with update_many.
    await collection.update_one(
        {"_id": "day"},
        {"$inc": {"counts.advocate.ka.clicks": 2, "counts.advocate.kb.clicks": 1, "counts.team.kt.leads": 1}},
        upsert=True,
    )
    await collection.update_one(
        {"_id": "day"}, {"$inc": {"counts.advocate.ka.clicks": 3, "counts.advocate.ka.leads": 1}}
    )
    await collection.update_many({}, {"$unset": {"counts.advocate.kb": ""}})
    assert await collection.find_one({"_id": "day"}) == {
        "_id": "day",
        "counts": {"advocate": {"ka": {"clicks": 5, "leads": 1}}, "team": {"kt": {"leads": 1}}},
    }


async def test_set_and_unset_together_leave_other_fields_alone(collection: AsyncCollection[Document]) -> None:
    # sharing erase_advocate: a tombstone id set and the team removed, in one update_many.
    await collection.insert_many(
        [
            {"_id": "s1", "advocate_id": "a", "team": "t", "department": "d", "code": "x"},
            {"_id": "s2", "advocate_id": "b", "team": "t", "code": "y"},
        ]
    )
    result = await collection.update_many(
        {"advocate_id": "a"},
        {"$set": {"advocate_id": "gone", "message": ""}, "$unset": {"team": "", "department": ""}},
    )
    assert (result.matched_count, result.modified_count) == (1, 1)
    assert await collection.find({}).sort("_id").to_list() == [
        {"_id": "s1", "advocate_id": "gone", "code": "x", "message": ""},
        {"_id": "s2", "advocate_id": "b", "team": "t", "code": "y"},
    ]


async def test_update_many_counts_only_the_documents_it_changed(
    collection: AsyncCollection[Document],
) -> None:
    # recognition set_board_visibility and the erasures read matched and modified counts.
    await collection.insert_many([{"_id": i, "org": "o", "visible": i % 2 == 0} for i in range(10)])
    result = await collection.update_many({"org": "o"}, {"$set": {"visible": True}})
    assert (result.matched_count, result.modified_count) == (10, 5)
    deleted = await collection.delete_many({"org": "o", "_id": {"$lt": 4}})
    assert deleted.deleted_count == 4


async def test_an_outbox_queues_in_order_pulls_what_was_sent_and_leaves_the_list_once_empty(
    collection: AsyncCollection[Document],
) -> None:
    # shared/outbox.py: records queued by `queue` ($push $each, $min on outbox_since, in an
    # upsert too); the relay pulls the ids it sent ($pull with $in on a field of the records)
    # and unsets outbox_since only while the outbox is empty ($size 0).
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def record(event_id: str, seconds: int) -> Document:
        return {"id": event_id, "at": t0 + timedelta(seconds=seconds), "event": "{}"}

    first = [record("a", 2), record("b", 3)]
    await collection.update_one({"_id": "doc", "org": "o"}, queue({"$set": {"state": 1}}, first), upsert=True)
    await collection.update_one({"_id": "doc"}, queue({"$set": {"state": 2}}, [record("c", 1)]))
    doc = await collection.find_one({"_id": "doc"})
    assert doc is not None
    assert [r["id"] for r in doc[OUTBOX]] == ["a", "b", "c"]
    assert (doc["state"], doc[OUTBOX_SINCE]) == (2, t0 + timedelta(seconds=1))

    emptied = {"_id": "doc", "org": "o", OUTBOX: {"$size": 0}}
    await collection.update_one({"_id": "doc", "org": "o"}, {"$pull": {OUTBOX: {"id": {"$in": ["a", "c"]}}}})
    assert (await collection.update_one(emptied, {"$unset": {OUTBOX_SINCE: ""}})).modified_count == 0
    await collection.update_one({"_id": "doc", "org": "o"}, {"$pull": {OUTBOX: {"id": {"$in": ["b"]}}}})
    assert (await collection.update_one(emptied, {"$unset": {OUTBOX_SINCE: ""}})).modified_count == 1
    assert await collection.find_one({"_id": "doc"}) == {"_id": "doc", "org": "o", "state": 2, OUTBOX: []}
