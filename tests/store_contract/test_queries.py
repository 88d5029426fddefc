"""Query semantics the stores rely on: nulls, arrays, regular expressions, sorts and pages,
projections, counts and times."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection

from shared.mongo import Document, applied_once_filter


async def ids(collection: AsyncCollection[Document], filter_: Document) -> list[str]:
    return sorted([str(d["_id"]) async for d in collection.find(filter_, {"_id": 1})])


async def test_null_matches_a_missing_field_and_ne_null_excludes_both(
    collection: AsyncCollection[Document],
) -> None:
    # content mark_course_completed (`completed_at: None` before it is ever set), recognition
    # mark_share_verified (`verified_by: {$in: [None, click]}`), reserve_reward (`stock: None`
    # for unlimited), active_advocates_by_team (`team: {$ne: None}`).
    await collection.insert_many([{"_id": "missing"}, {"_id": "null", "v": None}, {"_id": "set", "v": "x"}])
    assert await ids(collection, {"v": None}) == ["missing", "null"]
    assert await ids(collection, {"v": {"$in": [None, "x"]}}) == ["missing", "null", "set"]
    assert await ids(collection, {"v": {"$ne": None}}) == ["set"]
    assert await ids(collection, {"$or": [{"v": None}, {"v": {"$gte": "a"}}]}) == ["missing", "null", "set"]


async def test_array_fields_match_elements_size_and_positions(collection: AsyncCollection[Document]) -> None:
    # content _content_filter: `tags: tag`, `audience.teams: {$size: 0}` (everyone); the old
    # relay's `outbox.0: {$exists: true}`; applied_once_filter's `$ne` on an array; `$nin`.
    await collection.insert_many(
        [
            {"_id": "empty", "tags": [], "audience": {"teams": []}, "applied_events": []},
            {"_id": "one", "tags": ["ai"], "audience": {"teams": ["t1"]}, "applied_events": ["e1"]},
            {
                "_id": "two",
                "tags": ["ai", "ml"],
                "audience": {"teams": ["t1", "t2"]},
                "applied_events": ["e2"],
            },
        ]
    )
    assert await ids(collection, {"tags": "ai"}) == ["one", "two"]
    assert await ids(collection, {"audience.teams": {"$size": 0}}) == ["empty"]
    assert await ids(collection, {"$or": [{"audience.teams": {"$size": 0}}, {"audience.teams": "t2"}]}) == [
        "empty",
        "two",
    ]
    assert await ids(collection, {"tags.0": {"$exists": True}}) == ["one", "two"]
    assert await ids(collection, {"tags.1": {"$exists": True}}) == ["two"]
    assert await ids(collection, applied_once_filter("e1")) == ["empty", "two"]
    assert await ids(collection, {"applied_events": {"$nin": ["e1", "e2"]}}) == ["empty"]


async def test_nor_of_pairs_leaves_out_only_documents_matching_a_whole_pair(
    collection: AsyncCollection[Document],
) -> None:
    # shared.webhooks.engine claim_due: due deliveries except those of the (org, target) pairs
    # in flight; the same target in another org is still taken.
    await collection.insert_many(
        [
            {"_id": "a-hook", "org": "a", "target": "hook"},
            {"_id": "a-other", "org": "a", "target": "other"},
            {"_id": "b-hook", "org": "b", "target": "hook"},
            {"_id": "c-other", "org": "c", "target": "other"},
        ]
    )
    busy = [{"org": "a", "target": "hook"}, {"org": "c", "target": "other"}]
    assert await ids(collection, {"$nor": busy}) == ["a-other", "b-hook"]


async def test_not_gte_matches_a_missing_field_and_smaller_values(
    collection: AsyncCollection[Document],
) -> None:
    # metrics apply: a watermark `{$not: {$gte: first}}` is absent or below this batch.
    await collection.insert_many(
        [{"_id": "none", "wm": {}}, {"_id": "low", "wm": {"p": 3}}, {"_id": "high", "wm": {"p": 9}}]
    )
    assert await ids(collection, {"wm.p": {"$not": {"$gte": 5}}}) == ["low", "none"]
    assert await ids(collection, {"wm.p": {"$lt": 5}}) == ["low"]
    assert await ids(collection, {"wm.p": {"$exists": False}}) == ["none"]


async def test_regular_expressions_match_escaped_text_and_anchored_prefixes(
    collection: AsyncCollection[Document],
) -> None:
    # content list_content (case-insensitive substring of re.escape'd text), sharing
    # erase_advocate (idempotency keys by an anchored prefix of _id).
    await collection.insert_many(
        [
            {"_id": "o:share:a:1", "title": "What is C++ (really)?"},
            {"_id": "o:share:a:2", "title": "c++ (REALLY) fast"},
            {"_id": "o:share:ab:1", "title": "C plus plus"},
            {"_id": "x:o:share:a:1", "title": "unrelated"},
        ]
    )
    text = {"$regex": re.escape("c++ (really)"), "$options": "i"}
    assert await ids(collection, {"title": text}) == ["o:share:a:1", "o:share:a:2"]
    prefix = {"$regex": f"^{re.escape('o:share:a:')}"}
    assert await ids(collection, {"_id": prefix}) == ["o:share:a:1", "o:share:a:2"]


async def test_keyset_pages_over_a_compound_sort_return_every_document_once(
    collection: AsyncCollection[Document],
) -> None:
    # recognition list_entries / list_rewards / list_redemptions: newest first, ties by _id,
    # the next page after (created_at, _id) of the last one.
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rng = random.Random(14)
    docs: list[Document] = [
        {"_id": f"e{i:03d}", "org": "o", "created_at": t0 + timedelta(seconds=rng.randrange(40))}
        for i in range(150)
    ]
    await collection.insert_many([*docs, {"_id": "other", "org": "p", "created_at": t0}])
    expected = [d["_id"] for d in sorted(docs, key=lambda d: (-d["created_at"].timestamp(), d["_id"]))]
    order = [("created_at", DESCENDING), ("_id", ASCENDING)]
    seen: list[str] = []
    after: tuple[datetime, str] | None = None
    while True:
        query: Document = {"org": "o"}
        if after is not None:
            query["$or"] = [
                {"created_at": {"$lt": after[0]}},
                {"created_at": after[0], "_id": {"$gt": after[1]}},
            ]
        page = await collection.find(query).sort(order).limit(20).to_list()
        if not page:
            break
        seen += [d["_id"] for d in page]
        after = (page[-1]["created_at"], page[-1]["_id"])
    assert seen == expected
    # skip is not used by the stores (they page by key), but the driver's cursors offer it.
    assert [
        d["_id"] for d in await collection.find({"org": "o"}).sort(order).skip(140).to_list()
    ] == expected[140:]


async def test_find_one_with_a_sort_returns_the_first_in_that_order(
    collection: AsyncCollection[Document],
) -> None:
    # content current_policy, recognition latest_rules: the newest version.
    await collection.insert_many([{"_id": f"o|{v}", "org": "o", "version": v} for v in (3, 11, 7)])
    latest = await collection.find_one({"org": "o"}, sort=[("version", DESCENDING)])
    assert latest is not None and latest["version"] == 11


async def test_projections_include_dotted_paths_and_exclude_fields(
    collection: AsyncCollection[Document],
) -> None:
    # metrics stats_docs (`counts.<dim>.<key>`), recognition get_share (`applied_events: 0`),
    # board_entries (`_id: 0`).
    await collection.insert_one(
        {
            "_id": "day",
            "day": "2026-01-01",
            "counts": {"advocate": {"ka": {"clicks": 1}, "kb": {"clicks": 2}}, "team": {"kt": {"clicks": 3}}},
            "applied_events": ["e1"],
        }
    )
    picked = await collection.find_one({"_id": "day"}, {"day": 1, "counts.advocate.kb": 1})
    assert picked == {"_id": "day", "day": "2026-01-01", "counts": {"advocate": {"kb": {"clicks": 2}}}}
    without = await collection.find_one({"_id": "day"}, {"applied_events": 0, "counts": 0})
    assert without == {"_id": "day", "day": "2026-01-01"}
    assert await collection.find_one({"_id": "day"}, {"_id": 0, "day": 1}) == {"day": "2026-01-01"}


async def test_count_documents_counts_what_the_filter_matches(collection: AsyncCollection[Document]) -> None:
    # recognition tag_rank (`shares: {$gt: mine}`) and add_colleague_sharer.
    rng = random.Random(7)
    docs: list[Document] = [
        {"_id": i, "org": "o", "tag": rng.choice("ab"), "shares": rng.randrange(30)} for i in range(200)
    ]
    await collection.insert_many(docs)
    expected = sum(1 for d in docs if d["tag"] == "a" and d["shares"] > 12)
    assert await collection.count_documents({"org": "o", "tag": "a", "shares": {"$gt": 12}}) == expected
    assert await collection.count_documents({"org": "nobody"}) == 0


async def test_times_come_back_in_utc_at_millisecond_precision(collection: AsyncCollection[Document]) -> None:
    # recognition now(): events rebuilt from a stored document equal the ones built in memory
    # only at the precision MongoDB keeps (milliseconds), as aware UTC datetimes (tz_aware).
    at = datetime(2026, 3, 4, 5, 6, 7, 891234, tzinfo=UTC)
    await collection.insert_one({"_id": "t", "at": at})
    doc = await collection.find_one({"_id": "t"})
    assert doc is not None
    assert doc["at"] == at.replace(microsecond=891000)
    assert doc["at"].utcoffset() == timedelta(0)
    # A query with the unrounded time is rounded the same way on its way to the server.
    assert await ids(collection, {"at": at}) == ["t"]
