"""The only module that touches MongoDB. Every query is scoped by organisation.

Exactly-once without transactions: a ledger entry's id is derived from (org, source event, kind)
and the ledger has a unique index on those, so an event applied twice inserts nothing the second
time. Every projection update (account, boards) records the entry id in the document it changes
(`applied_events`), so re-applying an entry after a crash changes nothing either.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.mongo import APPLIED_WINDOW, Document, IndexSpec, applied_once_filter

RULES = "rules"
LEDGER = "ledger"
ACCOUNTS = "accounts"
BOARDS = "boards"
TEAM_BOARDS = "team_boards"
ADVOCATES = "advocates"
SHARES = "shares"
DAILY = "daily_points"
CONTENT_AUTHORS = "content_authors"
COLLEAGUE_SHARES = "colleague_shares"
TAG_SHARES = "tag_shares"
BADGE_DEFS = "badge_definitions"
AWARDS = "awards"
REWARDS = "rewards"
REDEMPTIONS = "redemptions"
WEBHOOKS = "webhooks"
DELIVERIES = "webhook_deliveries"
KUDOS = "kudos"
KUDOS_WEEKS = "kudos_weeks"
GOALS = "goals"
ERASED = "erased_advocates"

INDEXES: list[IndexSpec] = [
    IndexSpec(RULES, [("org", ASCENDING), ("version", DESCENDING)], unique=True),
    # The guarantee that one event changes the ledger once, whatever the redeliveries.
    IndexSpec(LEDGER, [("org", ASCENDING), ("source_event_id", ASCENDING), ("kind", ASCENDING)], unique=True),
    IndexSpec(LEDGER, [("org", ASCENDING), ("advocate_id", ASCENDING), ("created_at", DESCENDING)]),
    IndexSpec(LEDGER, [("org", ASCENDING), ("ref", ASCENDING), ("kind", ASCENDING)]),
    IndexSpec(LEDGER, [("projected", ASCENDING), ("created_at", ASCENDING)]),
    IndexSpec(LEDGER, [("published", ASCENDING), ("created_at", ASCENDING)]),
    IndexSpec(ACCOUNTS, [("org", ASCENDING), ("advocate_id", ASCENDING)], unique=True),
    # The leaderboard projection: one document per (period, advocate), read in points order.
    IndexSpec(
        BOARDS,
        [
            ("org", ASCENDING),
            ("period", ASCENDING),
            ("visible", ASCENDING),
            ("points", DESCENDING),
            ("advocate_id", ASCENDING),
        ],
        name="board_order",
    ),
    IndexSpec(BOARDS, [("org", ASCENDING), ("advocate_id", ASCENDING)]),
    IndexSpec(TEAM_BOARDS, [("org", ASCENDING), ("period", ASCENDING)]),
    IndexSpec(ADVOCATES, [("org", ASCENDING), ("team", ASCENDING)]),
    IndexSpec(TAG_SHARES, [("org", ASCENDING), ("tag", ASCENDING), ("shares", DESCENDING)]),
    IndexSpec(COLLEAGUE_SHARES, [("org", ASCENDING), ("author", ASCENDING)]),
    IndexSpec(AWARDS, [("org", ASCENDING), ("advocate_id", ASCENDING), ("awarded_at", DESCENDING)]),
    IndexSpec(AWARDS, [("published", ASCENDING), ("awarded_at", ASCENDING)]),
    IndexSpec(BADGE_DEFS, [("org", ASCENDING), ("badge_id", ASCENDING)], unique=True),
    IndexSpec(REWARDS, [("org", ASCENDING), ("created_at", DESCENDING)]),
    IndexSpec(REDEMPTIONS, [("org", ASCENDING), ("created_at", DESCENDING)]),
    IndexSpec(REDEMPTIONS, [("org", ASCENDING), ("advocate_id", ASCENDING), ("created_at", DESCENDING)]),
    IndexSpec(REDEMPTIONS, [("needs_relay", ASCENDING), ("updated_at", ASCENDING)]),
    IndexSpec(DELIVERIES, [("state", ASCENDING), ("next_attempt_at", ASCENDING)]),
    IndexSpec(DELIVERIES, [("org", ASCENDING), ("created_at", DESCENDING)]),
    IndexSpec(KUDOS, [("org", ASCENDING), ("to", ASCENDING), ("created_at", DESCENDING)]),
    IndexSpec(GOALS, [("org", ASCENDING), ("advocate_id", ASCENDING)]),
]


def now() -> datetime:
    # Millisecond precision, as MongoDB stores it: an event built from a document in memory and
    # the same event rebuilt later from the stored document (the relay) must be equal.
    at = datetime.now(UTC)
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def _key(*parts: str) -> str:
    return "|".join(parts)


class KeyedLocks:
    """One asyncio lock per document key.

    FerretDB 1.24 (SQLite) does not apply single-document updates atomically: concurrent `$inc`s on
    one document lose updates, and a conditional update's filter and write can interleave. Every
    read-modify-write of a shared document (accounts, boards, caps, stock) goes through these locks,
    so one process never races itself. Real MongoDB makes each update atomic, which is what keeps
    several replicas correct there.
    """

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            yield
        if not lock.locked() and not lock._waiters:  # forget idle locks so the map stays small
            self._locks.pop(key, None)


LOCKS = KeyedLocks()


def _mark(entry_id: str) -> Document:
    """`$push` an applied entry id. Plain push: FerretDB 1.24 ignores `$slice` and refuses `$each` on a
    missing field, so the window is kept by `_trim` instead of `shared.mongo.mark_applied`."""
    return {"applied_events": entry_id}


async def _trim(coll: Any, doc_id: str) -> None:
    """Keep the applied-ids window bounded: drop the oldest id once it is over APPLIED_WINDOW."""
    await coll.update_one(
        {"_id": doc_id, f"applied_events.{APPLIED_WINDOW}": {"$exists": True}},
        {"$pop": {"applied_events": -1}},
    )


async def _upsert_once(
    coll: Any,
    doc_id: str,
    entry_id: str,
    inc: dict[str, int],
    on_insert: Document,
    set_fields: Document | None = None,
) -> bool:
    """Add `inc` to the document once per entry id, creating the document if needed. True if applied.

    Creation is a plain insert: FerretDB refuses `$push` with `$each` inside an upsert.
    """
    async with LOCKS.hold(f"{coll.name}|{doc_id}"):
        update: Document = {"$inc": inc, "$push": _mark(entry_id)}
        if set_fields:
            update["$set"] = set_fields
        while True:
            result = await coll.update_one({"_id": doc_id, **applied_once_filter(entry_id)}, update)
            if result.modified_count:
                await _trim(coll, doc_id)
                return True
            if await coll.find_one({"_id": doc_id}, {"_id": 1}) is not None:
                return False  # the document exists and already holds this entry id
            try:
                await coll.insert_one(
                    {"_id": doc_id, **on_insert, **(set_fields or {}), **inc, "applied_events": [entry_id]}
                )
                return True
            except DuplicateKeyError:
                continue  # created meanwhile: apply as an update


class RecognitionStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db

    # --- rules ---------------------------------------------------------------------------------

    async def latest_rules(self, org: str) -> Document | None:
        return await self.db[RULES].find_one({"org": org}, sort=[("version", DESCENDING)])

    async def insert_rules(self, org: str, version: int, rules_json: str, created_by: str) -> bool:
        try:
            await self.db[RULES].insert_one(
                {
                    "_id": _key(org, str(version)),
                    "org": org,
                    "version": version,
                    "rules_json": rules_json,
                    "created_by": created_by,
                    "created_at": now(),
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def list_rules(self, org: str, *, before_version: int | None, limit: int) -> list[Document]:
        query: Document = {"org": org}
        if before_version is not None:
            query["version"] = {"$lt": before_version}
        return await self.db[RULES].find(query).sort("version", DESCENDING).limit(limit).to_list()

    # --- advocates (profile projection from chorus.advocates) ----------------------------------

    async def upsert_advocate(self, org: str, advocate_id: str, fields: Document) -> Document | None:
        """Set the profile; returns the previous document (to see what changed)."""
        return await self.db[ADVOCATES].find_one_and_update(
            {"_id": _key(org, advocate_id)},
            {"$set": {**fields, "org": org, "advocate_id": advocate_id}},
            upsert=True,
            return_document=ReturnDocument.BEFORE,
        )

    async def get_advocate(self, org: str, advocate_id: str) -> Document | None:
        return await self.db[ADVOCATES].find_one({"_id": _key(org, advocate_id)})

    async def active_advocates_by_team(self, org: str) -> dict[str, int]:
        pipeline: list[Document] = [
            {"$match": {"org": org, "team": {"$ne": None}}},
            {"$group": {"_id": "$team", "n": {"$sum": 1}}},
        ]
        rows = await (await self.db[ADVOCATES].aggregate(pipeline)).to_list()
        return {str(r["_id"]): int(r["n"]) for r in rows}

    async def set_board_visibility(self, org: str, advocate_id: str, visible: bool) -> None:
        await self.db[BOARDS].update_many(
            {"org": org, "advocate_id": advocate_id}, {"$set": {"visible": visible}}
        )

    # --- shares, caps ------------------------------------------------------------------------

    async def remember_share(
        self, org: str, share_id: str, fields: Document, team: str | None = None
    ) -> Document:
        update: Document = {"$setOnInsert": {"org": org, "share_id": share_id, "points": 0, **fields}}
        if team is not None:
            update["$set"] = {"team": team}
        doc = await self.db[SHARES].find_one_and_update(
            {"_id": _key(org, share_id)}, update, upsert=True, return_document=ReturnDocument.AFTER
        )
        assert doc is not None
        return doc

    async def get_share(self, org: str, share_id: str) -> Document | None:
        return await self.db[SHARES].find_one({"_id": _key(org, share_id)}, {"applied_events": 0})

    async def mark_share_verified(self, org: str, share_id: str, click_id: str) -> bool:
        """True if this click is the share's verifying click (first time, or the same click again)."""
        async with LOCKS.hold(_key(SHARES, org, share_id)):
            doc = await self.db[SHARES].find_one_and_update(
                {"_id": _key(org, share_id), "verified_by": None},
                {"$set": {"verified_by": click_id}},
                return_document=ReturnDocument.AFTER,
            )
            if doc is not None:
                return True
            existing = await self.db[SHARES].find_one({"_id": _key(org, share_id)}, {"verified_by": 1})
            return existing is not None and existing.get("verified_by") == click_id

    async def add_share_points(self, org: str, share_id: str, entry_id: str, points: int) -> None:
        await _upsert_once(
            self.db[SHARES],
            _key(org, share_id),
            entry_id,
            {"points": points},
            {"org": org, "share_id": share_id, "verified_by": None},
        )

    async def daily_grant(
        self,
        org: str,
        advocate_id: str,
        day: str,
        entry_id: str,
        wanted: int,
        cap: int | None,
        share_left: int | None,
    ) -> int:
        """Reserve up to `wanted` points under the daily cap, once per entry (compare-and-set).

        The grant is kept in the day's document, so a retry of the same entry gets the same answer.
        """
        async with LOCKS.hold(_key(DAILY, org, advocate_id, day)):
            coll = self.db[DAILY]
            doc_id = _key(org, advocate_id, day)
            while True:
                doc = await coll.find_one({"_id": doc_id})
                if doc is None:
                    with contextlib.suppress(DuplicateKeyError):
                        await coll.insert_one(
                            {"_id": doc_id, "org": org, "advocate_id": advocate_id, "points": 0, "grants": {}}
                        )
                    continue
                grants: dict[str, int] = doc.get("grants", {})
                if entry_id in grants:
                    return int(grants[entry_id])
                used = int(doc["points"])
                grant = wanted if cap is None else max(0, min(wanted, cap - used))
                if share_left is not None:
                    grant = max(0, min(grant, share_left))
                result = await coll.update_one(
                    {"_id": doc_id, "points": used, f"grants.{entry_id}": {"$exists": False}},
                    {"$inc": {"points": grant}, "$set": {f"grants.{entry_id}": grant}},
                )
                if result.modified_count:
                    return grant

    # --- content authors and colleagues ------------------------------------------------------

    async def set_content_author(self, org: str, content_id: str, author: str) -> None:
        await self.db[CONTENT_AUTHORS].update_one(
            {"_id": _key(org, content_id)}, {"$set": {"org": org, "author": author}}, upsert=True
        )

    async def content_author(self, org: str, content_id: str) -> str | None:
        doc = await self.db[CONTENT_AUTHORS].find_one({"_id": _key(org, content_id)})
        return None if doc is None else str(doc["author"])

    async def add_colleague_sharer(self, org: str, author: str, sharer: str) -> int:
        """Record that `sharer` shared `author`'s content; returns how many distinct colleagues have."""
        with contextlib.suppress(DuplicateKeyError):
            await self.db[COLLEAGUE_SHARES].insert_one(
                {"_id": _key(org, author, sharer), "org": org, "author": author, "sharer": sharer}
            )
        return await self.db[COLLEAGUE_SHARES].count_documents({"org": org, "author": author})

    async def add_tag_share(self, org: str, advocate_id: str, tags: list[str], event_id: str) -> None:
        for tag in tags:
            await _upsert_once(
                self.db[TAG_SHARES],
                _key(org, tag, advocate_id),
                event_id,
                {"shares": 1},
                {"org": org, "tag": tag, "advocate_id": advocate_id},
            )

    async def tag_rank(self, org: str, tag: str, advocate_id: str) -> int:
        """1-based rank on a tag by shares (0 when the advocate has none)."""
        doc = await self.db[TAG_SHARES].find_one({"_id": _key(org, tag, advocate_id)})
        if doc is None or not doc.get("shares"):
            return 0
        ahead = await self.db[TAG_SHARES].count_documents(
            {"org": org, "tag": tag, "shares": {"$gt": doc["shares"]}}
        )
        return ahead + 1

    # --- ledger --------------------------------------------------------------------------------

    async def insert_entry(self, entry: Document) -> Document:
        """Insert the entry, or return the one already there for the same (org, source event, kind)."""
        try:
            await self.db[LEDGER].insert_one(entry)
            return entry
        except DuplicateKeyError:
            existing = await self.db[LEDGER].find_one(
                {"org": entry["org"], "source_event_id": entry["source_event_id"], "kind": entry["kind"]}
            )
            assert existing is not None
            return existing

    async def get_entry(self, org: str, entry_id: str) -> Document | None:
        return await self.db[LEDGER].find_one({"_id": entry_id, "org": org})

    async def entries_by_ref(self, org: str, ref: str, kinds: list[str]) -> list[Document]:
        return await self.db[LEDGER].find({"org": org, "ref": ref, "kind": {"$in": kinds}}).to_list()

    async def mark_entry(self, entry_id: str, fields: Document) -> None:
        await self.db[LEDGER].update_one({"_id": entry_id}, {"$set": fields})

    async def list_entries(
        self, org: str, advocate_id: str | None, *, after: tuple[datetime, str] | None, limit: int
    ) -> list[Document]:
        query: Document = {"org": org}
        if advocate_id is not None:
            query["advocate_id"] = advocate_id
        if after is not None:
            query["$or"] = [
                {"created_at": {"$lt": after[0]}},
                {"created_at": after[0], "_id": {"$gt": after[1]}},
            ]
        cursor = (
            self.db[LEDGER].find(query).sort([("created_at", DESCENDING), ("_id", ASCENDING)]).limit(limit)
        )
        return await cursor.to_list()

    async def stale_entries(self, field: str, older_than: datetime, limit: int = 200) -> list[Document]:
        return (
            await self.db[LEDGER]
            .find({field: False, "created_at": {"$lt": older_than}})
            .limit(limit)
            .to_list()
        )

    # --- accounts ------------------------------------------------------------------------------

    async def ensure_account(self, org: str, advocate_id: str) -> None:
        # A plain insert: an upsert's $setOnInsert drops empty arrays on FerretDB 1.24.
        doc_id = _key(org, advocate_id)
        if await self.db[ACCOUNTS].find_one({"_id": doc_id}, {"_id": 1}) is not None:
            return
        with contextlib.suppress(DuplicateKeyError):
            await self.db[ACCOUNTS].insert_one(
                {
                    "_id": doc_id,
                    "org": org,
                    "advocate_id": advocate_id,
                    "balance": 0,
                    "lifetime": 0,
                    "written_off": 0,
                    "counters": {},
                    "badges": [],
                    "courses": [],
                    "applied_events": [],
                }
            )

    async def get_account(self, org: str, advocate_id: str) -> Document | None:
        return await self.db[ACCOUNTS].find_one({"_id": _key(org, advocate_id)})

    async def apply_to_account(
        self,
        org: str,
        advocate_id: str,
        entry_id: str,
        *,
        balance: int,
        lifetime: int,
        inc: Document | None = None,
        add_to_set: Document | None = None,
    ) -> bool:
        """Apply an entry to the account once. A debit larger than the balance takes it to zero and
        records the difference as written off: the balance never goes negative."""
        async with LOCKS.hold(_key(ACCOUNTS, org, advocate_id)):
            await self.ensure_account(org, advocate_id)
            coll = self.db[ACCOUNTS]
            doc_id = _key(org, advocate_id)
            while True:
                update: Document = {
                    "$inc": {"balance": balance, "lifetime": lifetime, **(inc or {})},
                    "$push": _mark(entry_id),
                }
                if add_to_set:
                    update["$addToSet"] = add_to_set
                query: Document = {"_id": doc_id, **applied_once_filter(entry_id)}
                if balance < 0:
                    query["balance"] = {"$gte": -balance}
                result = await coll.update_one(query, update)
                if result.modified_count:
                    await _trim(coll, doc_id)
                    return True
                doc = await coll.find_one({"_id": doc_id})
                assert doc is not None
                if entry_id in doc.get("applied_events", []):
                    return False
                # Not enough balance for the whole debit: take what is there, write off the rest.
                current = int(doc["balance"])
                update["$inc"]["balance"] = -current
                update["$inc"]["written_off"] = -balance - current
                result = await coll.update_one(
                    {"_id": doc_id, "balance": current, **applied_once_filter(entry_id)}, update
                )
                if result.modified_count:
                    await _trim(coll, doc_id)
                    return True

    async def spend(self, org: str, advocate_id: str, spend_id: str, cost: int) -> bool:
        """Take `cost` from the balance in one conditional update; False when it is not there."""
        async with LOCKS.hold(_key(ACCOUNTS, org, advocate_id)):
            await self.ensure_account(org, advocate_id)
            result = await self.db[ACCOUNTS].update_one(
                {"_id": _key(org, advocate_id), "balance": {"$gte": cost}, **applied_once_filter(spend_id)},
                {"$inc": {"balance": -cost}, "$push": _mark(spend_id)},
            )
            return bool(result.modified_count)

    async def raise_counter(self, org: str, advocate_id: str, counter: str, value: int) -> None:
        async with LOCKS.hold(_key(ACCOUNTS, org, advocate_id)):
            await self.ensure_account(org, advocate_id)
            await self.db[ACCOUNTS].update_one(
                {"_id": _key(org, advocate_id)}, {"$max": {f"counters.{counter}": value}}
            )

    async def add_badge_to_account(self, org: str, advocate_id: str, badge_id: str) -> None:
        async with LOCKS.hold(_key(ACCOUNTS, org, advocate_id)):
            await self.db[ACCOUNTS].update_one(
                {"_id": _key(org, advocate_id)}, {"$addToSet": {"badges": badge_id}}
            )

    # --- boards --------------------------------------------------------------------------------

    async def add_to_board(
        self,
        org: str,
        period: str,
        advocate_id: str,
        team: str | None,
        visible: bool,
        entry_id: str,
        points: int,
    ) -> None:
        on_insert: Document = {"org": org, "period": period, "advocate_id": advocate_id, "visible": visible}
        if team is None:
            on_insert["team"] = None
        await _upsert_once(
            self.db[BOARDS],
            _key(org, period, advocate_id),
            entry_id,
            {"points": points},
            on_insert,
            {"team": team} if team is not None else None,
        )

    async def add_to_team_board(self, org: str, period: str, team: str, entry_id: str, points: int) -> None:
        await _upsert_once(
            self.db[TEAM_BOARDS],
            _key(org, period, team),
            entry_id,
            {"points": points},
            {"org": org, "period": period, "team": team},
        )

    async def board_entries(self, org: str, period: str) -> list[Document]:
        """Every advocate's entry on one board (see standings.py for how they are served)."""
        fields = {"_id": 0, "advocate_id": 1, "points": 1, "team": 1, "visible": 1}
        return await self.db[BOARDS].find({"org": org, "period": period}, fields).to_list()

    async def team_boards(self, org: str, period: str) -> list[Document]:
        return (
            await self.db[TEAM_BOARDS].find({"org": org, "period": period}, {"applied_events": 0}).to_list()
        )

    # --- badges --------------------------------------------------------------------------------

    async def insert_badge_definition(self, org: str, badge_id: str, definition_json: str) -> bool:
        try:
            await self.db[BADGE_DEFS].insert_one(
                {
                    "_id": _key(org, badge_id),
                    "org": org,
                    "badge_id": badge_id,
                    "definition_json": definition_json,
                    "created_at": now(),
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def badge_definitions(self, org: str) -> list[Document]:
        return await self.db[BADGE_DEFS].find({"org": org}).sort("created_at", ASCENDING).to_list()

    async def insert_award(self, award: Document) -> bool:
        try:
            await self.db[AWARDS].insert_one(award)
        except DuplicateKeyError:
            return False
        return True

    async def get_award(self, org: str, award_id: str) -> Document | None:
        return await self.db[AWARDS].find_one({"_id": award_id, "org": org})

    async def awards_of(self, org: str, advocate_id: str) -> list[Document]:
        return (
            await self.db[AWARDS]
            .find({"org": org, "advocate_id": advocate_id})
            .sort("awarded_at", DESCENDING)
            .to_list()
        )

    async def mark_award_published(self, award_id: str) -> None:
        await self.db[AWARDS].update_one({"_id": award_id}, {"$set": {"published": True}})

    async def stale_awards(self, older_than: datetime, limit: int = 200) -> list[Document]:
        return (
            await self.db[AWARDS]
            .find({"published": False, "awarded_at": {"$lt": older_than}})
            .limit(limit)
            .to_list()
        )

    # --- rewards and redemptions --------------------------------------------------------------

    async def insert_reward(self, reward: Document) -> None:
        await self.db[REWARDS].insert_one(reward)

    async def get_reward(self, org: str, reward_id: str) -> Document | None:
        return await self.db[REWARDS].find_one({"_id": reward_id, "org": org})

    async def list_rewards(
        self, org: str, *, after: tuple[datetime, str] | None, limit: int
    ) -> list[Document]:
        query: Document = {"org": org}
        if after is not None:
            query["$or"] = [
                {"created_at": {"$lt": after[0]}},
                {"created_at": after[0], "_id": {"$gt": after[1]}},
            ]
        return (
            await self.db[REWARDS]
            .find(query)
            .sort([("created_at", DESCENDING), ("_id", ASCENDING)])
            .limit(limit)
            .to_list()
        )

    async def reserve_reward(self, org: str, reward_id: str, price_cents: int) -> bool:
        """Take one unit of stock and its price from the budget in one conditional update."""
        async with LOCKS.hold(_key(REWARDS, reward_id)):
            result = await self.db[REWARDS].update_one(
                {
                    "_id": reward_id,
                    "org": org,
                    "active": True,
                    "$and": [
                        {"$or": [{"stock": None}, {"stock": {"$gte": 1}}]},
                        {"$or": [{"budget_left_cents": None}, {"budget_left_cents": {"$gte": price_cents}}]},
                    ],
                },
                {"$inc": {"stock_taken": 1, "spent_cents": price_cents}},
            )
            if not result.modified_count:
                return False
            # Decrement the limits that exist (an unlimited reward keeps null stock / budget).
            await self.db[REWARDS].update_one(
                {"_id": reward_id, "stock": {"$ne": None}}, {"$inc": {"stock": -1}}
            )
            await self.db[REWARDS].update_one(
                {"_id": reward_id, "budget_left_cents": {"$ne": None}},
                {"$inc": {"budget_left_cents": -price_cents}},
            )
            return True

    async def release_reward(self, org: str, reward_id: str, price_cents: int) -> None:
        async with LOCKS.hold(_key(REWARDS, reward_id)):
            await self.db[REWARDS].update_one(
                {"_id": reward_id, "org": org}, {"$inc": {"stock_taken": -1, "spent_cents": -price_cents}}
            )
            await self.db[REWARDS].update_one(
                {"_id": reward_id, "stock": {"$ne": None}}, {"$inc": {"stock": 1}}
            )
            await self.db[REWARDS].update_one(
                {"_id": reward_id, "budget_left_cents": {"$ne": None}},
                {"$inc": {"budget_left_cents": price_cents}},
            )

    async def insert_redemption(self, redemption: Document) -> None:
        await self.db[REDEMPTIONS].insert_one(redemption)

    async def get_redemption(self, org: str, redemption_id: str) -> Document | None:
        return await self.db[REDEMPTIONS].find_one({"_id": redemption_id, "org": org})

    async def move_redemption(
        self,
        org: str,
        redemption_id: str,
        from_statuses: list[str],
        to_status: str,
        by: str,
        extra: Document | None = None,
    ) -> Document | None:
        """Compare-and-set the status; the new status waits in `unpublished` until its event is out."""
        async with LOCKS.hold(_key(REDEMPTIONS, redemption_id)):
            at = now()
            return await self.db[REDEMPTIONS].find_one_and_update(
                {"_id": redemption_id, "org": org, "status": {"$in": from_statuses}},
                {
                    "$set": {
                        "status": to_status,
                        "updated_at": at,
                        f"{to_status}_at": at,
                        f"{to_status}_by": by,
                        "needs_relay": True,
                        **(extra or {}),
                    },
                    "$push": {"unpublished": to_status},
                },
                return_document=ReturnDocument.AFTER,
            )

    async def redemption_published(self, redemption_id: str, status: str) -> None:
        await self.db[REDEMPTIONS].update_one({"_id": redemption_id}, {"$pull": {"unpublished": status}})

    async def finish_redemption_relay(self, redemption_id: str) -> None:
        await self.db[REDEMPTIONS].update_one(
            {"_id": redemption_id, "unpublished": {"$size": 0}, "refund_pending": {"$ne": True}},
            {"$set": {"needs_relay": False}},
        )

    async def claim_stock_return(self, redemption_id: str) -> bool:
        async with LOCKS.hold(_key(REDEMPTIONS, redemption_id)):
            result = await self.db[REDEMPTIONS].update_one(
                {"_id": redemption_id, "stock_returned": {"$ne": True}}, {"$set": {"stock_returned": True}}
            )
            return bool(result.modified_count)

    async def clear_refund_pending(self, redemption_id: str) -> None:
        await self.db[REDEMPTIONS].update_one({"_id": redemption_id}, {"$set": {"refund_pending": False}})

    async def list_redemptions(
        self,
        org: str,
        advocate_id: str | None,
        status: str | None,
        *,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Document]:
        query: Document = {"org": org}
        if advocate_id is not None:
            query["advocate_id"] = advocate_id
        if status is not None:
            query["status"] = status
        if after is not None:
            query["$or"] = [
                {"created_at": {"$lt": after[0]}},
                {"created_at": after[0], "_id": {"$gt": after[1]}},
            ]
        return (
            await self.db[REDEMPTIONS]
            .find(query)
            .sort([("created_at", DESCENDING), ("_id", ASCENDING)])
            .limit(limit)
            .to_list()
        )

    async def stale_redemptions(self, older_than: datetime, limit: int = 200) -> list[Document]:
        return (
            await self.db[REDEMPTIONS]
            .find({"needs_relay": True, "updated_at": {"$lt": older_than}})
            .limit(limit)
            .to_list()
        )

    # --- webhooks ------------------------------------------------------------------------------

    async def set_webhook(self, org: str, url: str, secret: str) -> None:
        await self.db[WEBHOOKS].update_one(
            {"_id": org}, {"$set": {"url": url, "secret": secret, "updated_at": now()}}, upsert=True
        )

    async def get_webhook(self, org: str) -> Document | None:
        return await self.db[WEBHOOKS].find_one({"_id": org})

    async def enqueue_delivery(self, delivery: Document) -> None:
        with contextlib.suppress(DuplicateKeyError):  # already queued for this redemption status
            await self.db[DELIVERIES].insert_one(delivery)

    async def claim_due_delivery(self, at: datetime, lease_until: datetime) -> Document | None:
        """Take one due delivery and push its next attempt past a lease, so two workers never both send it."""
        return await self.db[DELIVERIES].find_one_and_update(
            {"state": "pending", "next_attempt_at": {"$lte": at}},
            {"$set": {"next_attempt_at": lease_until}},
            sort=[("next_attempt_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )

    async def delivery_done(self, delivery_id: str, fields: Document) -> None:
        await self.db[DELIVERIES].update_one({"_id": delivery_id}, {"$set": fields, "$inc": {"attempts": 1}})

    async def list_deliveries(self, org: str, limit: int) -> list[Document]:
        return (
            await self.db[DELIVERIES].find({"org": org}).sort("created_at", DESCENDING).limit(limit).to_list()
        )

    # --- kudos ---------------------------------------------------------------------------------

    async def take_kudos_allowance(self, org: str, giver: str, week: str, allowance: int) -> bool:
        async with LOCKS.hold(_key(KUDOS_WEEKS, org, giver, week)):
            coll = self.db[KUDOS_WEEKS]
            doc_id = _key(org, giver, week)
            try:
                result = await coll.update_one(
                    {"_id": doc_id, "given": {"$lt": allowance}},
                    {"$inc": {"given": 1}, "$setOnInsert": {"org": org, "giver": giver}},
                    upsert=True,
                )
            except DuplicateKeyError:
                return False  # the week's document exists and is at the allowance
            return bool(result.modified_count or result.upserted_id is not None)

    async def kudos_given(self, org: str, giver: str, week: str) -> int:
        doc = await self.db[KUDOS_WEEKS].find_one({"_id": _key(org, giver, week)})
        return 0 if doc is None else int(doc["given"])

    async def insert_kudos(self, kudos: Document) -> None:
        await self.db[KUDOS].insert_one(kudos)

    async def kudos_received(self, org: str, advocate_id: str, limit: int) -> list[Document]:
        return (
            await self.db[KUDOS]
            .find({"org": org, "to": advocate_id})
            .sort("created_at", DESCENDING)
            .limit(limit)
            .to_list()
        )

    # --- goals ---------------------------------------------------------------------------------

    async def insert_goal(self, goal: Document) -> None:
        await self.db[GOALS].insert_one(goal)

    async def goals_of(self, org: str, advocate_id: str) -> list[Document]:
        return (
            await self.db[GOALS]
            .find({"org": org, "advocate_id": advocate_id})
            .sort("created_at", ASCENDING)
            .to_list()
        )

    async def delete_goal(self, org: str, advocate_id: str, goal_id: str) -> bool:
        result = await self.db[GOALS].delete_one({"_id": goal_id, "org": org, "advocate_id": advocate_id})
        return bool(result.deleted_count)

    # --- erasure -------------------------------------------------------------------------------

    async def boards_of(self, org: str, advocate_id: str) -> list[Document]:
        return await self.db[BOARDS].find({"org": org, "advocate_id": advocate_id}).to_list()

    async def delete_board_entry(self, doc_id: str) -> None:
        await self.db[BOARDS].delete_one({"_id": doc_id})

    async def mark_erased(self, org: str, advocate_hash: str) -> None:
        await self.db[ERASED].update_one(
            {"_id": _key(org, advocate_hash)}, {"$set": {"org": org}}, upsert=True
        )

    async def is_erased(self, org: str, advocate_hash: str) -> bool:
        return await self.db[ERASED].find_one({"_id": _key(org, advocate_hash)}) is not None

    async def erase_advocate(self, org: str, advocate_id: str, token: str) -> None:
        """Remove the advocate's personal data; the ledger keeps its amounts under an unlinkable token."""
        await self.db[LEDGER].update_many(
            {"org": org, "advocate_id": advocate_id}, {"$set": {"advocate_id": token, "team": None}}
        )
        await self.db[REDEMPTIONS].update_many(
            {"org": org, "advocate_id": advocate_id}, {"$set": {"advocate_id": token}}
        )
        await self.db[KUDOS].delete_many({"org": org, "to": advocate_id})
        await self.db[KUDOS].update_many({"org": org, "from": advocate_id}, {"$set": {"from": None}})
        await self.db[KUDOS_WEEKS].delete_many({"org": org, "giver": advocate_id})
        await self.db[AWARDS].delete_many({"org": org, "advocate_id": advocate_id})
        await self.db[GOALS].delete_many({"org": org, "advocate_id": advocate_id})
        await self.db[TAG_SHARES].delete_many({"org": org, "advocate_id": advocate_id})
        await self.db[COLLEAGUE_SHARES].delete_many(
            {"org": org, "$or": [{"author": advocate_id}, {"sharer": advocate_id}]}
        )
        await self.db[SHARES].update_many(
            {"org": org, "advocate_id": advocate_id}, {"$set": {"advocate_id": token}}
        )
        await self.db[DAILY].delete_many({"org": org, "advocate_id": advocate_id})
        await self.db[ACCOUNTS].delete_one({"_id": _key(org, advocate_id)})
        await self.db[ADVOCATES].delete_one({"_id": _key(org, advocate_id)})
