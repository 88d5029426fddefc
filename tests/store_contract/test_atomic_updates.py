"""Single-document updates are atomic under concurrency, through a real connection pool.

Chorus keeps no locks in its processes and runs several replicas: every read-modify-write of a
shared document is one conditional update, and these tests are the interleavings that must not
lose or duplicate anything. Each one runs its operations side by side on the pool and checks
that more than one connection was in use at once, so a one-connection pool cannot pass them.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from shared.mongo import Document, applied_once_filter, conditional_upsert, mark_applied
from tests.store_contract.conftest import PoolWatch, secantusdb_bug

ROUNDS = 10  # a lost race shows only sometimes: each round races on a document of its own


@pytest.fixture
def pool(pool_watch: PoolWatch) -> PoolWatch:
    pool_watch.reset()
    return pool_watch


def ran_side_by_side(pool: PoolWatch) -> None:
    assert pool.peak > 1, "the operations never shared the pool: the test proved nothing"


async def test_concurrent_increments_of_one_document_are_all_applied(
    collection: AsyncCollection[Document], pool: PoolWatch
) -> None:
    # Every projection counter (metrics stats, boards, share counts): 50 writers x 20 `$inc`.
    await collection.insert_one({"_id": "counter", "n": 0})

    async def writer() -> None:
        for _ in range(20):
            await collection.update_one({"_id": "counter"}, {"$inc": {"n": 1}})

    await asyncio.gather(*(writer() for _ in range(50)))
    ran_side_by_side(pool)
    assert await collection.find_one({"_id": "counter"}) == {"_id": "counter", "n": 1000}


async def test_concurrent_conditional_spends_never_overspend(
    collection: AsyncCollection[Document], pool: PoolWatch
) -> None:
    # recognition PointsStore.spend: the balance check and the debit are one update.
    balance, cost, attempts = 1000, 7, 300
    await collection.insert_one({"_id": "account", "balance": balance, "applied_events": []})

    async def spend(spend_id: str) -> bool:
        result = await collection.update_one(
            {"_id": "account", "balance": {"$gte": cost}, **applied_once_filter(spend_id)},
            {"$inc": {"balance": -cost}, "$push": mark_applied(spend_id)},
        )
        return result.modified_count == 1

    spent = await asyncio.gather(*(spend(f"spend-{i}") for i in range(attempts)))
    ran_side_by_side(pool)
    account = await collection.find_one({"_id": "account"})
    assert account is not None
    assert sum(spent) == balance // cost
    assert account["balance"] == balance - sum(spent) * cost
    assert account["balance"] >= 0


async def test_one_event_applied_concurrently_changes_the_document_once(
    collection: AsyncCollection[Document], pool: PoolWatch
) -> None:
    # shared.mongo applied_once_filter/mark_applied (content share counts, recognition
    # projections): redeliveries of one event may race each other.
    await collection.insert_one({"_id": "item", "share_count": 0})

    async def apply(event_id: str) -> None:
        await collection.update_one(
            {"_id": "item", **applied_once_filter(event_id)},
            {"$inc": {"share_count": 1}, "$push": mark_applied(event_id)},
        )

    # 40 distinct events, each delivered 3 times, all at once.
    await asyncio.gather(*(apply(f"event-{i % 40}") for i in range(120)))
    ran_side_by_side(pool)
    item = await collection.find_one({"_id": "item"})
    assert item is not None
    assert item["share_count"] == 40
    assert sorted(item["applied_events"]) == sorted(f"event-{i}" for i in range(40))


# Each caller's own pre-image while others change the document at once. Claims read one, but
# their update makes their filter miss, and they are exact (the claims test below); recognition
# advocate_profile no longer reads one; metrics swap_stats has one caller, the rebuild.
_BEFORE_UNDER_A_RACE = secantusdb_bug(
    "under concurrent updates of one document, find_one_and_update(BEFORE) returns one pre-image "
    "to several callers",
    "test_concurrent_claims_take_each_due_item_once, recognition advocate_profile, metrics swap_stats",
)


@pytest.mark.parametrize(
    ("returned", "created_by_the_race"),
    [
        pytest.param(ReturnDocument.AFTER, False, id="AFTER-existing document"),
        pytest.param(
            ReturnDocument.AFTER,
            True,
            id="AFTER-new document",
            marks=secantusdb_bug(
                "find_one_and_update(upsert=True, AFTER) racing to create a document returns None "
                "to some callers whose update it applied",
                "test_an_update_or_else_an_insert_returns_each_caller_its_own_document",
            ),
        ),
        pytest.param(ReturnDocument.BEFORE, False, id="BEFORE-existing document", marks=_BEFORE_UNDER_A_RACE),
        pytest.param(ReturnDocument.BEFORE, True, id="BEFORE-new document", marks=_BEFORE_UNDER_A_RACE),
    ],
)
async def test_find_one_and_update_returns_each_caller_its_own_update(
    collection: AsyncCollection[Document], pool: PoolWatch, returned: bool, created_by_the_race: bool
) -> None:
    # A sequence handed out by `$inc`: each caller must see the document as its own update left
    # it (AFTER) or found it (BEFORE), never another caller's, and an upsert that another
    # caller's upsert beat to the insert is applied as an update, not lost or failed. Only the
    # caller that created the document gets None, and only with BEFORE.
    # Chorus relies on AFTER on an existing document (content complete_module, recognition
    # move_redemption). metrics swap_stats reads BEFORE with an upsert, but has one caller.
    callers = 60
    for round_ in range(ROUNDS):
        doc_id = f"sequence-{round_}"
        if not created_by_the_race:
            await collection.insert_one({"_id": doc_id, "n": 0})

        async def take(doc_id: str = doc_id) -> int | None:
            doc = await collection.find_one_and_update(
                {"_id": doc_id}, {"$inc": {"n": 1}}, upsert=True, return_document=returned
            )
            return None if doc is None else int(doc["n"])

        seen = await asyncio.gather(*(take() for _ in range(callers)))
        if returned == ReturnDocument.AFTER:
            expected: list[int | None] = list(range(1, callers + 1))
        elif created_by_the_race:
            expected = [None, *range(1, callers)]
        else:
            expected = list(range(callers))
        assert sorted(seen, key=lambda n: -1 if n is None else n) == expected, f"round {round_}"
        assert await collection.find_one({"_id": doc_id}) == {"_id": doc_id, "n": callers}
    ran_side_by_side(pool)


@pytest.mark.parametrize(
    "returned", [ReturnDocument.AFTER, ReturnDocument.BEFORE], ids=["AFTER, by due time", "BEFORE"]
)
async def test_concurrent_claims_take_each_due_item_once(
    collection: AsyncCollection[Document], pool: PoolWatch, returned: bool
) -> None:
    # Workers take a due item by pushing its time past a lease; no item may be taken twice.
    # recognition claim_due_delivery takes the earliest (sort, AFTER); a claim that takes any
    # returns the pre-image (BEFORE: its update makes the filter miss, so no two callers get one).
    now = datetime.now(UTC)
    await collection.create_index([("state", ASCENDING), ("next_attempt_at", ASCENDING)])
    await collection.insert_many(
        [
            {"_id": f"d{i:03d}", "state": "pending", "next_attempt_at": now - timedelta(seconds=i)}
            for i in range(100)
        ]
    )
    lease_until = now + timedelta(minutes=5)
    sort = [("next_attempt_at", ASCENDING)] if returned == ReturnDocument.AFTER else None

    async def worker() -> list[str]:
        taken: list[str] = []
        while True:
            doc = await collection.find_one_and_update(
                {"state": "pending", "next_attempt_at": {"$lte": now}},
                {"$set": {"next_attempt_at": lease_until}},
                sort=sort,
                return_document=returned,
            )
            if doc is None:
                return taken
            taken.append(doc["_id"])

    claims = [item for taken in await asyncio.gather(*(worker() for _ in range(20))) for item in taken]
    ran_side_by_side(pool)
    assert sorted(claims) == [f"d{i:03d}" for i in range(100)]


async def test_an_update_or_else_an_insert_returns_each_caller_its_own_document(
    collection: AsyncCollection[Document], pool: PoolWatch
) -> None:
    # content complete_module: find_one_and_update (AFTER) of the document if it exists, else
    # the insert of the first one, and the update again when another caller inserted it first.
    # Each caller sees the document as its own write left it, also while they race to create it.
    callers = 60
    for round_ in range(ROUNDS):
        doc_id = f"sequence-{round_}"

        async def take(doc_id: str = doc_id) -> int:
            while True:
                doc = await collection.find_one_and_update(
                    {"_id": doc_id}, {"$inc": {"n": 1}}, return_document=ReturnDocument.AFTER
                )
                if doc is not None:
                    return int(doc["n"])
                try:
                    await collection.insert_one({"_id": doc_id, "n": 1})
                except DuplicateKeyError:
                    continue
                return 1

        seen = await asyncio.gather(*(take() for _ in range(callers)))
        assert sorted(seen) == list(range(1, callers + 1)), f"round {round_}"
        assert await collection.find_one({"_id": doc_id}) == {"_id": doc_id, "n": callers}
    ran_side_by_side(pool)


async def test_a_conditional_update_one_upsert_under_a_cap_admits_exactly_the_cap(
    collection: AsyncCollection[Document], pool: PoolWatch
) -> None:
    # sharing reserve_daily_share, recognition take_kudos_allowance (shared.mongo
    # conditional_upsert): `{_id, count: {$lt: cap}}` with an upsert, for a day's document that
    # the first reservations race to create. update_one's counts say who was counted; a
    # DuplicateKeyError (the document exists at the cap, or another caller created it a moment
    # ago) is answered by a plain update. Exactly the cap is admitted, however many race.
    cap = 10

    async def reserve(day: str) -> bool:
        return await conditional_upsert(
            collection,
            {"_id": day, "count": {"$lt": cap}},
            {"$inc": {"count": 1}, "$setOnInsert": {"advocate_id": "a"}},
        )

    for round_ in range(ROUNDS):
        day = f"day-{round_}"
        admitted = sum(await asyncio.gather(*(reserve(day) for _ in range(60))))
        assert admitted == cap, f"round {round_}"
        assert await collection.find_one({"_id": day}) == {"_id": day, "count": cap, "advocate_id": "a"}
        assert not await reserve(day)
    ran_side_by_side(pool)


@secantusdb_bug(
    "a conditional find_one_and_update upsert under a cap returns None to callers it counted",
    "test_a_conditional_update_one_upsert_under_a_cap_admits_exactly_the_cap",
)
async def test_a_conditional_upsert_under_a_cap_admits_exactly_what_it_counts(
    collection: AsyncCollection[Document], pool: PoolWatch
) -> None:
    # The same cap as find_one_and_update returning the document (what sharing
    # reserve_daily_share did): every caller told "admitted" was counted and no other. When the
    # document exists at the cap the upsert collides on _id (DuplicateKeyError: refused).
    cap = 10

    async def reserve(day: str) -> bool:
        try:
            doc = await collection.find_one_and_update(
                {"_id": day, "count": {"$lt": cap}},
                {"$inc": {"count": 1}, "$setOnInsert": {"advocate_id": "a"}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            return False
        return doc is not None

    for round_ in range(ROUNDS):
        day = f"day-{round_}"
        admitted = sum(await asyncio.gather(*(reserve(day) for _ in range(60))))
        counted = await collection.find_one({"_id": day})
        assert counted is not None
        assert counted["count"] == admitted, f"round {round_}: told {admitted} callers yes, counted {counted}"
        assert 1 <= admitted <= cap
        # One at a time, the rest of the cap is admitted, and then nothing more.
        while await reserve(day):
            admitted += 1
        assert admitted == cap
        assert await collection.find_one({"_id": day}) == {"_id": day, "count": cap, "advocate_id": "a"}
    ran_side_by_side(pool)


async def test_concurrent_upserts_of_one_new_id_create_one_document(
    collection: AsyncCollection[Document], pool: PoolWatch
) -> None:
    # metrics upsert_advocate / advocate_shared / course_completed: an upsert by `{_id}` alone
    # raises nothing when another upsert creates the document first (MongoDB retries it).
    async def upsert() -> None:
        await collection.update_one(
            {"_id": "advocate"}, {"$inc": {"n": 1}, "$setOnInsert": {"enrolled": False}}, upsert=True
        )

    await asyncio.gather(*(upsert() for _ in range(50)))
    ran_side_by_side(pool)
    assert await collection.find({}).to_list() == [{"_id": "advocate", "n": 50, "enrolled": False}]


async def test_compare_and_set_on_a_version_has_one_winner(
    collection: AsyncCollection[Document], pool: PoolWatch
) -> None:
    # content save_content: the write succeeds only if nobody changed the item since it was read.
    await collection.insert_one({"_id": "item", "version": 1, "title": "first"})

    async def save(title: str) -> bool:
        result = await collection.update_one(
            {"_id": "item", "version": 1}, {"$set": {"title": title}, "$inc": {"version": 1}}
        )
        return result.modified_count == 1

    titles = [f"title {i}" for i in range(30)]
    won = await asyncio.gather(*(save(title) for title in titles))
    ran_side_by_side(pool)
    assert sum(won) == 1
    item = await collection.find_one({"_id": "item"})
    assert item is not None
    assert item["version"] == 2
    assert item["title"] == titles[won.index(True)]


# --- find_one_and_update's return values, as the stores use them -------------------------------


async def test_find_one_and_update_before_with_upsert_returns_none_when_it_creates(
    collection: AsyncCollection[Document],
) -> None:
    # metrics swap_stats: "what was there before" (None: nothing).
    first = await collection.find_one_and_update(
        {"_id": "stats"}, {"$set": {"active": "g1"}}, upsert=True, return_document=ReturnDocument.BEFORE
    )
    second = await collection.find_one_and_update(
        {"_id": "stats"}, {"$set": {"active": "g2"}}, upsert=True, return_document=ReturnDocument.BEFORE
    )
    assert first is None
    assert second == {"_id": "stats", "active": "g1"}
    assert await collection.find_one({"_id": "stats"}) == {"_id": "stats", "active": "g2"}


async def test_find_one_and_update_after_with_upsert_returns_the_created_document(
    collection: AsyncCollection[Document],
) -> None:
    # An upsert's own result, one caller at a time (no Chorus path needs it any more: each
    # writes as the race tests above show).
    update: Document = {
        "$setOnInsert": {"org": "o", "points": 0, "verified_by": None},
        "$addToSet": {"completed": "m1"},
    }
    created = await collection.find_one_and_update(
        {"_id": "share"}, update, upsert=True, return_document=ReturnDocument.AFTER
    )
    again = await collection.find_one_and_update(
        {"_id": "share"}, {**update, "$set": {"team": "t"}}, upsert=True, return_document=ReturnDocument.AFTER
    )
    assert created == {"_id": "share", "org": "o", "points": 0, "verified_by": None, "completed": ["m1"]}
    assert again == {**created, "team": "t"}


async def test_find_one_and_update_without_a_match_returns_none_and_writes_nothing(
    collection: AsyncCollection[Document],
) -> None:
    # recognition RewardStore.move: a status move from a status the redemption is not in.
    await collection.insert_one({"_id": "r", "status": "approved"})
    moved = await collection.find_one_and_update(
        {"_id": "r", "status": {"$in": ["requested"]}},
        {"$set": {"status": "rejected"}},
        return_document=ReturnDocument.AFTER,
    )
    assert moved is None
    assert await collection.find_one({"_id": "r"}) == {"_id": "r", "status": "approved"}


async def test_find_one_and_update_before_returns_the_document_as_it_was(
    collection: AsyncCollection[Document],
) -> None:
    # A claim that takes any due item returns it as it was before its lease was set.
    due = datetime(2026, 1, 1, tzinfo=UTC)
    await collection.insert_one({"_id": "s", "status": "pending", "send_at": due})
    before = await collection.find_one_and_update(
        {"status": "pending", "send_at": {"$lte": due}},
        {"$set": {"send_at": due + timedelta(minutes=1)}},
        return_document=ReturnDocument.BEFORE,
    )
    assert before == {"_id": "s", "status": "pending", "send_at": due}


async def test_a_conditional_upsert_that_misses_an_existing_document_raises_duplicate_key(
    collection: AsyncCollection[Document],
) -> None:
    # metrics ProjectionStore.apply fences on offset watermarks: `{_id, wm.<src>: {$lt: first}}`
    # with an upsert must collide on _id (not create a second document, not update) when the
    # document has moved past that offset, or has no watermark for the source yet.
    await collection.insert_one({"_id": "day", "wm": {"p0": 7}, "n": 1})
    for fence in ({"wm.p0": {"$lt": 5}}, {"wm.p1": {"$lt": 5}}):
        with pytest.raises(DuplicateKeyError):
            await collection.update_one(
                {"_id": "day", **fence}, {"$inc": {"n": 1}, "$max": {"wm.p1": 9}}, upsert=True
            )
    # The retry after reading the document: a missing watermark is matched with $exists.
    result = await collection.update_one(
        {"_id": "day", "wm.p0": 7, "wm.p1": {"$exists": False}},
        {"$inc": {"n": 1}, "$max": {"wm.p0": 9, "wm.p1": 3}},
        upsert=True,
    )
    assert result.modified_count == 1
    assert await collection.find({}).to_list() == [{"_id": "day", "wm": {"p0": 9, "p1": 3}, "n": 2}]


async def test_unique_ids_make_a_second_insert_fail(collection: AsyncCollection[Document]) -> None:
    # shared.idempotency run_once and recognition RulesStore.insert claim a key by inserting it.
    await collection.insert_one({"_id": "key", "state": "running"})
    with pytest.raises(DuplicateKeyError) as raised:
        await collection.insert_one({"_id": "key", "state": "running"})
    assert raised.value.code == 11000
    assert await collection.count_documents({}) == 1
