"""Secondary indexes: the queries the services run are served by the indexes their stores declare.

Each collection below gets the indexes that the store owning it declares (imported from its
INDEXES, so the two cannot drift apart; a store that adds a query shape adds the query here) and
enough documents that a scan and an index walk differ. A query passes when the winning plan of
`explain()` walks an index and scans no collection; a page read in the order of an index
declared for it must also need no blocking SORT, or every matching document is read and sorted
for each page.

Updates and deletes are explained as a find with the same filter: that filter is how the server
finds the documents to change (and SecantusDB's explain of an update command ignores it).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.content.main import INDEXES as CONTENT
from services.metrics.main import INDEXES as METRICS
from services.metrics.projections.store import stats_indexes
from services.metrics.webhooks.store import INDEXES as METRICS_WEBHOOKS
from services.recognition.main import INDEXES as RECOGNITION
from services.sharing.shares.store import INDEXES as SHARING
from shared.mongo import Document, IndexSpec, ensure_indexes, is_duplicate_key
from shared.outbox import OUTBOX_SINCE, PAGE, PENDING_FILTER

DOCUMENTS = 1500  # per collection: enough for a scan and an index walk to differ
T0 = datetime(2026, 1, 1, tzinfo=UTC)
ORGS = 5

# The plan stages that walk an index. MongoDB 8.0 serves a point lookup (an equality on `_id` or
# on a unique single-field index) by an "express" plan, EXPRESS_IXSCAN, where it used to say
# IXSCAN or IDHACK; SecantusDB names its plans the same way.
INDEX_WALKS = {"IXSCAN", "EXPRESS_IXSCAN"}


def _at(i: int) -> datetime:
    return T0 + timedelta(seconds=i)


def _outbox(i: int, every: int) -> Document:
    """Fields of a document with events in its outbox (shared/outbox.py), one in `every`."""
    return {"outbox": [{"id": f"ev{i}", "at": _at(i)}], OUTBOX_SINCE: _at(i)} if i % every == 0 else {}


@dataclass(frozen=True)
class Collection:
    indexes: list[IndexSpec]  # as the store declares them
    document: Callable[[int], Document]


def declared(collection: str, *stores: list[IndexSpec]) -> list[IndexSpec]:
    """The indexes the stores' INDEXES declare on `collection`, each once (two services'
    collections of one name are one collection here, so an index both declare is one index)."""
    by_name: dict[str, IndexSpec] = {}
    for spec in itertools.chain(*stores):
        if spec.collection == collection:
            by_name.setdefault(spec.model().document["name"], spec)
    assert by_name, f"no store declares an index on {collection}"
    return list(by_name.values())


COLLECTIONS: dict[str, Collection] = {
    # services/recognition/points/store.py LEDGER; the relay's pending work in a partial index, the
    # outbox relay's in a sparse one
    "ledger": Collection(
        declared("ledger", RECOGNITION),
        lambda i: {
            "_id": f"e{i:05d}",
            "org": f"org{i % ORGS}",
            "advocate_id": f"a{i % 40}",
            "source_event_id": f"ev{i}",
            "kind": ("share", "click", "lead", "reversal")[i % 4],
            "requested_by": f"u{i % 30}" if i % 4 == 3 else None,
            "ref": f"ref{i % 300}",
            "created_at": _at(i // 2),  # pairs share a time: pages must break ties by _id
            "projected": i % 10 != 0,
            **_outbox(i, 7),
        },
    ),
    # shared/webhooks/engine.py DELIVERIES (declared by recognition and metrics, which use it)
    "webhook_deliveries": Collection(
        declared("webhook_deliveries", RECOGNITION, METRICS_WEBHOOKS),
        lambda i: {
            "_id": f"d{i:05d}",
            "org": f"org{i % ORGS}",
            "target": f"ep{i % 10}" if i % 2 else "fulfilment",
            "state": ("pending", "delivered", "failed")[i % 3],
            "attempts": i % 4,
            "next_attempt_at": _at(i),
            "created_at": _at(i),
        },
    ),
    # services/sharing/shares/store.py SHARES
    "shares": Collection(
        declared("shares", SHARING),
        lambda i: {
            "_id": f"s{i:05d}",
            "org": f"org{i % ORGS}",
            "advocate_id": f"a{i % 40}",
            "code": f"code{i:05d}",
            "status": ("pending", "cancelled", "sent", "sent", "sent")[i % 5],
            "send_at": _at(i),
            # a few cancelled ones still to give their daily-limit slot back (partial index)
            **({"cancelled_at": _at(i), "slot_to_release": True} if i % 25 == 1 else {}),
            # a few links cancelled or whose advocate was erased (sparse index)
            **({"link_changed_at": _at(i)} if i % 30 == 2 else {}),
            **_outbox(i, 11),
        },
    ),
    # services/metrics/projections/store.py CLICK_INDEX
    "click_index": Collection(
        declared("click_index", METRICS),
        lambda i: {
            "_id": f"k{i:05d}",
            "org": f"org{i % ORGS}",
            "visitor_hash": f"v{i % 200}",
            "advocate_id": f"a{i % 40}",
            "clicked_at": _at(i),
            "bot": i % 11 == 0,
        },
    ),
    # services/metrics/projections/store.py stats_indexes (the stats_g<n> generations)
    "stats_g0": Collection(
        stats_indexes("stats_g0"),
        lambda i: {
            "_id": f"t{i:05d}",
            "org": f"org{i % ORGS}",
            "part": ("all", "dims")[i % 2],
            "day": (T0 + timedelta(days=i % 300)).date().isoformat(),
        },
    ),
    # services/metrics/attribution/store.py CUSTOMERS: an index on a field of the subdocuments of an array
    "customers": Collection(
        declared("customers", METRICS),
        lambda i: {
            "_id": f"org{i % ORGS}|cust{i}",
            "org": f"org{i % ORGS}",
            "touches": [{"advocate_id": f"a{(i + n) % 40}", "share_id": f"s{i + n}"} for n in range(3)],
        },
    ),
    # services/metrics/attribution/store.py CONVERSIONS
    "conversions": Collection(
        declared("conversions", METRICS),
        lambda i: {
            "_id": f"v{i:05d}",
            "org": f"org{i % ORGS}",
            "created_at": _at(i),
            **_outbox(i, 25),
        },
    ),
    # services/content/library/store.py CONTENT; the outbox relay's list in a sparse index
    "content": Collection(
        declared("content", CONTENT),
        lambda i: {
            "_id": f"c{i:05d}",
            "org": f"org{i % ORGS}",
            "status": ("published", "draft", "pending_review", "archived")[i % 4],
            "author_advocate_id": f"a{i % 40}" if i % 3 == 0 else None,
            "created_by": f"u{i % 30}",
            "published_by": f"u{i % 30}" if i % 4 == 0 else None,
            "expires_at": _at(i * 60),
            **_outbox(i, 50),
        },
    ),
    # services/recognition/profiles/store.py ADVOCATES
    "advocates": Collection(
        declared("advocates", RECOGNITION),
        lambda i: {
            "_id": f"a{i:05d}",
            "org": f"org{i % ORGS}",
            "team": None if i % 6 == 0 else f"team{i % 8}",
        },
    ),
    # services/recognition/engagement/store.py TAG_SHARES
    "tag_shares": Collection(
        declared("tag_shares", RECOGNITION),
        lambda i: {
            "_id": f"g{i:05d}",
            "org": f"org{i % ORGS}",
            "tag": f"tag{i % 20}",
            "advocate_id": f"a{i}",
            "shares": i % 50,
        },
    ),
    # services/recognition/engagement/store.py KUDOS
    "kudos": Collection(
        declared("kudos", RECOGNITION),
        lambda i: {
            "_id": f"kds{i:05d}",
            "org": f"org{i % ORGS}",
            "from": f"a{i % 40}",
            "to": f"a{(i + 1) % 40}",
            "created_at": _at(i // 2),  # pairs share a time: pages must break ties by _id
            "scored": i % 10 != 0,
        },
    ),
    # services/recognition/rewards/store.py REDEMPTIONS
    "redemptions": Collection(
        declared("redemptions", RECOGNITION),
        lambda i: {
            "_id": f"r{i:05d}",
            "org": f"org{i % ORGS}",
            "advocate_id": f"a{i % 40}",
            "needs_relay": i % 9 == 0,
            "created_at": _at(i),
            "updated_at": _at(i),
            "approved_by": f"u{i % 30}" if i % 3 else None,
            "rejected_by": f"u{i % 30}" if i % 3 == 0 else None,
            "fulfilled_by": f"k{i % 5}" if i % 3 == 1 else None,
            **_outbox(i, 13),
        },
    ),
    # services/recognition/badges/store.py CONTENT_AUTHORS
    "content_authors": Collection(
        declared("content_authors", RECOGNITION),
        lambda i: {"_id": f"org{i % ORGS}|c{i:05d}", "org": f"org{i % ORGS}", "author": f"a{i % 40}"},
    ),
    # services/recognition/rules/store.py RULES
    "rules": Collection(
        declared("rules", RECOGNITION),
        lambda i: {"_id": f"org{i % ORGS}|{i}", "org": f"org{i % ORGS}", "version": i},
    ),
    # services/recognition/leaderboards/store.py BOARDS ("board_order")
    "boards": Collection(
        declared("boards", RECOGNITION),
        lambda i: {
            "_id": f"b{i:05d}",
            "org": f"org{i % ORGS}",
            "period": ("all", "2026-W01", "2026-01")[i % 3],
            "advocate_id": f"a{i}",
            "visible": i % 10 != 0,
            "points": i % 97,
        },
    ),
    # services/metrics/goals/store.py GOAL_SNAPSHOTS
    "goal_snapshots": Collection(
        declared("goal_snapshots", METRICS),
        lambda i: {
            "_id": f"n{i:05d}",
            "org": f"org{i % ORGS}",
            "goal_id": f"goal{i % 10}",
            "date": (T0 + timedelta(days=i)).date().isoformat(),
        },
    ),
}


@dataclass(frozen=True)
class Query:
    """One kind of query a store runs: a find (filter, sort, limit) or an aggregation pipeline."""

    where: str  # the code that runs it
    collection: str
    filter: Document
    sort: list[tuple[str, int]] | None = None
    limit: int = 0
    pipeline: list[Document] | None = None


def count(filter_: Document) -> list[Document]:
    """The pipeline `count_documents` sends."""
    return [{"$match": filter_}, {"$group": {"_id": 1, "n": {"$sum": 1}}}]


QUERIES: dict[str, Query] = {
    "an advocate's ledger, first page": Query(
        "recognition PointsStore.entries",
        "ledger",
        {"org": "org1", "advocate_id": "a1"},
        [("created_at", DESCENDING), ("_id", ASCENDING)],
        20,
    ),
    "an advocate's ledger, next page": Query(
        "recognition PointsStore.entries (after), RewardStore.rewards, RewardStore.redemptions",
        "ledger",
        {
            "org": "org1",
            "advocate_id": "a1",
            "$or": [{"created_at": {"$lt": _at(300)}}, {"created_at": _at(300), "_id": {"$gt": "e00600"}}],
        },
        [("created_at", DESCENDING), ("_id", ASCENDING)],
        20,
    ),
    "the organisation's ledger, next page": Query(
        "recognition PointsStore.entries (admins, no advocate)",
        "ledger",
        {
            "org": "org1",
            "$or": [{"created_at": {"$lt": _at(300)}}, {"created_at": _at(300), "_id": {"$gt": "e00600"}}],
        },
        [("created_at", DESCENDING), ("_id", ASCENDING)],
        20,
    ),
    **{
        f"an advocate's kudos {listed}, next page": Query(
            f"recognition EngagementStore.kudos_{listed} (after)",
            "kudos",
            {
                "org": "org1",
                by: "a1",
                "$or": [
                    {"created_at": {"$lt": _at(300)}},
                    {"created_at": _at(300), "_id": {"$gt": "kds00600"}},
                ],
            },
            [("created_at", DESCENDING), ("_id", ASCENDING)],
            20,
        )
        for listed, by in (("received", "to"), ("sent", "from"))
    },
    "ledger entries of a ref by kinds": Query(
        "recognition PointsStore.entries_by_ref",
        "ledger",
        {"org": "org1", "ref": "ref1", "kind": {"$in": ["share", "click"]}},
    ),
    "ledger entries not projected yet (partial index)": Query(
        "recognition PointsStore.unprojected_entries, the relay",
        "ledger",
        {"projected": False, "created_at": {"$lt": _at(600)}},
        limit=200,
    ),
    "the ledger entry of an event": Query(
        "recognition PointsStore.insert_entry",
        "ledger",
        {"org": "org1", "source_event_id": "ev1", "kind": "click"},
    ),
    "an advocate's ledger entries (erasure)": Query(
        "recognition PointsStore.erase (update_many)",
        "ledger",
        {"org": "org1", "advocate_id": "a1"},
    ),
    "reversals a staff member asked for (erasure; partial index)": Query(
        "recognition PointsStore.erase (update_many)",
        "ledger",
        {"org": "org1", "kind": "reversal", "requested_by": "u1"},
    ),
    "the earliest due webhook delivery": Query(
        "shared.webhooks.engine DeliveryStore.claim_due",
        "webhook_deliveries",
        {"state": "pending", "next_attempt_at": {"$lte": _at(900)}, "attempts": {"$lt": 5}},
        [("next_attempt_at", ASCENDING)],
        1,
    ),
    "the earliest due webhook delivery of an endpoint not in flight": Query(
        "shared.webhooks.engine DeliveryStore.claim_due (busy)",
        "webhook_deliveries",
        {
            "state": "pending",
            "next_attempt_at": {"$lte": _at(900)},
            "attempts": {"$lt": 5},
            "$nor": [{"org": "org1", "target": "ep1"}, {"org": "org2", "target": "fulfilment"}],
        },
        [("next_attempt_at", ASCENDING)],
        1,
    ),
    "due webhook deliveries whose attempts are all claimed": Query(
        "shared.webhooks.engine DeliveryStore.fail_abandoned (update_many)",
        "webhook_deliveries",
        {"state": "pending", "next_attempt_at": {"$lte": _at(900)}, "attempts": {"$gte": 5}},
    ),
    "a target's deliveries": Query(
        "shared.webhooks.engine DeliveryStore.list (metrics: an endpoint; recognition: fulfilment)",
        "webhook_deliveries",
        {"org": "org1", "target": "ep1"},
        [("created_at", DESCENDING)],
        50,
    ),
    "a share by its code": Query(
        "sharing share_by_code (the public redirect; find_one, so limit 1)",
        "shares",
        {"code": "code00042"},
        limit=1,
    ),
    "an advocate's shares, next page": Query(
        "sharing list_shares",
        "shares",
        {"org": "org1", "advocate_id": "a1", "_id": {"$lt": "s01000"}},
        [("_id", DESCENDING)],
        20,
    ),
    "scheduled shares that are due": Query(
        "sharing due_shares",
        "shares",
        {"status": "pending", "send_at": {"$lte": _at(700)}},
    ),
    "cancelled shares still holding a daily-limit slot (partial index)": Query(
        "sharing SharesStore.slots_to_release_across, the due-share job",
        "shares",
        {"slot_to_release": True},
        limit=200,
    ),
    "links changed since the redirect's last look (sparse index)": Query(
        "sharing SharesStore.links_changed_since, the redirect's refresh",
        "shares",
        {"link_changed_at": {"$gte": _at(1200)}},
    ),
    "an advocate's links (erasure)": Query(
        "sharing SharesStore.codes_of",
        "shares",
        {"org": "org1", "advocate_id": "a1"},
    ),
    "an advocate's cancelled shares still holding a slot": Query(
        "sharing SharesStore.slots_to_release",
        "shares",
        {"org": "org1", "advocate_id": "a1", "slot_to_release": True},
    ),
    "a visitor's recent human clicks": Query(
        "metrics visitor_clicks",
        "click_index",
        {
            "org": "org1",
            "visitor_hash": "v1",
            "clicked_at": {"$gte": _at(100)},
            "bot": False,
            "advocate_id": {"$ne": "erased"},
        },
        limit=200,
    ),
    "an advocate's clicks (erasure)": Query(
        "metrics erase_advocate (update_many)", "click_index", {"org": "org1", "advocate_id": "a1"}
    ),
    "stats of a day range": Query(
        "metrics stats_docs",
        "stats_g0",
        {"org": "org1", "part": "dims", "day": {"$gte": "2026-02-01", "$lte": "2026-03-01"}},
    ),
    "an organisation's content by status": Query(
        "content list_content (an $and of clauses, the org beside it: shared/tenancy.py)",
        "content",
        {"$and": [{"status": "published"}], "org": "org1"},
        [("_id", DESCENDING)],
        20,
    ),
    "expired content": Query(
        "content expired_content",
        "content",
        {"status": {"$in": ["published", "pending_review"]}, "expires_at": {"$lte": _at(6000)}},
        limit=100,
    ),
    "content an author created (erasure)": Query(
        "content erase_author (update_many)", "content", {"org": "org1", "created_by": "u1"}
    ),
    "content a staff member published (erasure)": Query(
        "content erase_author (update_many)", "content", {"org": "org1", "published_by": "u1"}
    ),
    "an author's unpublished submissions (erasure)": Query(
        "content erase_author (delete_many)",
        "content",
        {
            "org": "org1",
            "author_advocate_id": "u1",
            "status": {"$in": ["draft", "pending_review", "rejected"]},
        },
    ),
    "advocates with a team, by team": Query(
        "recognition ProfileStore.members_by_team (aggregate; the tenant's $match comes first)",
        "advocates",
        {},
        pipeline=[
            {"$match": {"org": "org1"}},
            {"$match": {"team": {"$ne": None}}},
            {"$group": {"_id": "$team", "n": {"$sum": 1}}},
        ],
    ),
    "advocates ahead on a tag": Query(
        "recognition EngagementStore.tag_rank (count_documents)",
        "tag_shares",
        {},
        pipeline=count({"org": "org1", "tag": "tag1", "shares": {"$gt": 20}}),
    ),
    "redemptions waiting for the relay (partial index)": Query(
        "recognition RewardStore.stale_redemptions",
        "redemptions",
        {"needs_relay": True, "updated_at": {"$lt": _at(1000)}},
        limit=200,
    ),
    "an advocate's redemptions": Query(
        "recognition RewardStore.redemptions",
        "redemptions",
        {"org": "org1", "advocate_id": "a1"},
        [("created_at", DESCENDING), ("_id", ASCENDING)],
        20,
    ),
    **{
        f"redemptions a staff member {by.removesuffix('_by')} (erasure)": Query(
            "recognition RewardStore.erase (update_many)", "redemptions", {"org": "org1", by: "u1"}
        )
        for by in ("approved_by", "rejected_by", "fulfilled_by")
    },
    "an author's content (erasure)": Query(
        "recognition BadgeStore.erase (delete_many)", "content_authors", {"org": "org1", "author": "a1"}
    ),
    "the latest rules": Query(
        "recognition RulesStore.latest", "rules", {"org": "org1"}, [("version", DESCENDING)], 1
    ),
    "a board's entries": Query("recognition BoardStore.entries", "boards", {"org": "org1", "period": "all"}),
    "a goal's snapshots in date order": Query(
        "metrics snapshots",
        "goal_snapshots",
        {"org": "org1", "goal_id": "goal1"},
        [("date", ASCENDING)],
        400,
    ),
    **{
        f"{collection} with events in their outbox (sparse index)": Query(
            "shared/outbox.py Outbox.relay", collection, PENDING_FILTER, [(OUTBOX_SINCE, ASCENDING)], PAGE
        )
        for collection in ("content", "ledger", "conversions", "redemptions", "shares")
    },
    "customers an advocate touched (index on an array's subdocuments)": Query(
        "metrics erase_customer_touches (update_many)",
        "customers",
        {"org": "org1", "touches.advocate_id": "a1"},
    ),
}

# Pages the code reads in the order of an index it declares for that purpose: the server must
# walk that index and stop at the page's end, not sort every matching document first.
READ_IN_INDEX_ORDER = [
    "the organisation's ledger, next page",
    "an advocate's kudos received, next page",
    "an advocate's kudos sent, next page",
    "the earliest due webhook delivery",
    "a target's deliveries",
    "an advocate's shares, next page",
    "the latest rules",
    "a goal's snapshots in date order",
    "content with events in their outbox (sparse index)",
]


@pytest.fixture(scope="module")
async def indexed(db: AsyncDatabase[Document]) -> AsyncIterator[AsyncDatabase[Document]]:
    for name, shape in COLLECTIONS.items():
        await ensure_indexes(db, shape.indexes)
        await db[name].insert_many([shape.document(i) for i in range(DOCUMENTS)])
    yield db
    for name in COLLECTIONS:
        await db[name].drop()


def _plan_parts(explained: Any, stages: list[str], indexes: list[str], in_plan: bool = False) -> None:
    """Collect the stage names and index names of every winning plan in an explain document.

    The winning plan sits in different places for a find, an aggregation, and MongoDB's two
    explain versions (classic and slot-based); walking the whole document finds them all.
    """
    if isinstance(explained, dict):
        for key, value in explained.items():
            if in_plan and key == "stage" and isinstance(value, str):
                stages.append(value)
            if in_plan and key == "indexName" and isinstance(value, str):
                indexes.append(value)
            if key in ("rejectedPlans", "allPlansExecution"):
                continue
            _plan_parts(value, stages, indexes, in_plan or key == "winningPlan")
    elif isinstance(explained, list):
        for value in explained:
            _plan_parts(value, stages, indexes, in_plan)


async def winning_plan(db: AsyncDatabase[Document], query: Query) -> tuple[list[str], list[str]]:
    """(stages, index names) of the winning plan of `query`."""
    if query.pipeline is not None:
        command = {"aggregate": query.collection, "pipeline": query.pipeline, "cursor": {}}
        explained = await db.command("explain", command, verbosity="queryPlanner")
    else:
        cursor = db[query.collection].find(query.filter)
        if query.sort:
            cursor = cursor.sort(query.sort)
        if query.limit:
            cursor = cursor.limit(query.limit)
        explained = await cursor.explain()
    stages: list[str] = []
    indexes: list[str] = []
    _plan_parts(explained, stages, indexes)
    assert stages, f"no winning plan in the explain output: {explained}"
    return stages, indexes


@pytest.mark.parametrize("name", list(QUERIES))
async def test_queries_the_services_run_walk_an_index(indexed: AsyncDatabase[Document], name: str) -> None:
    query = QUERIES[name]
    stages, indexes = await winning_plan(indexed, query)
    assert "COLLSCAN" not in stages and INDEX_WALKS & set(stages), (
        f"{name} ({query.where}) scans {query.collection}: plan {stages}"
    )
    assert indexes


@pytest.mark.parametrize("name", READ_IN_INDEX_ORDER)
async def test_pages_read_in_index_order_need_no_blocking_sort(
    indexed: AsyncDatabase[Document], name: str
) -> None:
    query = QUERIES[name]
    stages, _ = await winning_plan(indexed, query)
    assert INDEX_WALKS & set(stages) and "SORT" not in stages, (
        f"{name} ({query.where}) sorts every match instead of reading the index in order: plan {stages}"
    )


# --- unique indexes -------------------------------------------------------------------------


async def test_a_compound_unique_index_refuses_a_second_entry_for_one_event(
    collection: AsyncCollection[Document],
) -> None:
    # recognition's ledger: one entry per (org, source event, kind), whatever the redeliveries.
    await ensure_indexes(
        collection.database,
        [
            IndexSpec(
                collection.name,
                [("org", ASCENDING), ("source_event_id", ASCENDING), ("kind", ASCENDING)],
                unique=True,
            )
        ],
    )
    await collection.insert_one({"_id": "e1", "org": "o", "source_event_id": "ev1", "kind": "click"})
    with pytest.raises(DuplicateKeyError) as raised:
        await collection.insert_one({"_id": "e2", "org": "o", "source_event_id": "ev1", "kind": "click"})
    assert raised.value.code == 11000
    assert is_duplicate_key(raised.value)
    # Another kind, or the same event in another organisation, is another entry.
    await collection.insert_one({"_id": "e3", "org": "o", "source_event_id": "ev1", "kind": "lead"})
    await collection.insert_one({"_id": "e4", "org": "p", "source_event_id": "ev1", "kind": "click"})
    assert sorted(d["_id"] for d in await collection.find({}).to_list()) == ["e1", "e3", "e4"]


async def test_a_unique_index_refuses_a_duplicate_made_by_an_update(
    collection: AsyncCollection[Document],
) -> None:
    # sharing's share codes: unique across all shares, however a document gets its code.
    await ensure_indexes(
        collection.database, [IndexSpec(collection.name, [("code", ASCENDING)], unique=True)]
    )
    await collection.insert_many([{"_id": "s1", "code": "abc"}, {"_id": "s2", "code": "xyz"}])
    with pytest.raises(DuplicateKeyError):
        await collection.update_one({"_id": "s2"}, {"$set": {"code": "abc"}})
    assert await collection.find_one({"_id": "s2"}) == {"_id": "s2", "code": "xyz"}


async def test_declaring_the_same_indexes_again_changes_nothing(
    collection: AsyncCollection[Document],
) -> None:
    # Every service runs ensure_indexes at each start, on collections that already have them.
    declared = [
        IndexSpec(collection.name, [("org", ASCENDING), ("version", DESCENDING)], unique=True),
        IndexSpec(collection.name, [("org", ASCENDING), ("created_at", DESCENDING)]),
    ]
    await ensure_indexes(collection.database, declared)
    first = await collection.index_information()
    await ensure_indexes(collection.database, declared)
    assert await collection.index_information() == first
    assert set(first) == {"_id_", "org_1_version_-1", "org_1_created_at_-1"}
    assert first["org_1_version_-1"].get("unique") is True
