"""The only module that touches MongoDB. Every query is scoped by organisation.

Exactly-once without transactions: a ledger entry's id is derived from (org, source event, kind)
and the ledger has a unique index on those, so an event applied twice inserts nothing the second
time. Every projection update (account, boards) records the entry id in the document it changes
(`applied_events`), so re-applying an entry after a crash changes nothing either.

Each write to a shared document (an account, a board, a day's cap, a reward's stock) is one
atomic single-document update whose filter holds its condition, so any number of processes and
connections may write at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.mongo import Document, IndexSpec, applied_once_filter, conditional_upsert, mark_applied
from shared.outbox import outbox_index, queue, with_outbox
from shared.webhooks.engine import INDEXES as DELIVERY_INDEXES
from shared.webhooks.engine import Target

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
KUDOS = "kudos"
KUDOS_WEEKS = "kudos_weeks"
GOALS = "goals"
ERASED = "erased_advocates"

# Collections whose documents may carry an outbox (shared/outbox.py): ledger entries
# (chorus.reward.granted), badge awards (chorus.badge.awarded), redemptions (chorus.reward.redeemed).
OUTBOX_COLLECTIONS = (LEDGER, AWARDS, REDEMPTIONS)

INDEXES: list[IndexSpec] = [
    IndexSpec(RULES, [("org", ASCENDING), ("version", DESCENDING)], unique=True),
    # The guarantee that one event changes the ledger once, whatever the redeliveries.
    IndexSpec(LEDGER, [("org", ASCENDING), ("source_event_id", ASCENDING), ("kind", ASCENDING)], unique=True),
    IndexSpec(LEDGER, [("org", ASCENDING), ("advocate_id", ASCENDING), ("created_at", DESCENDING)]),
    IndexSpec(LEDGER, [("org", ASCENDING), ("ref", ASCENDING), ("kind", ASCENDING)]),
    # The relay's pending work: a partial index holds only the entries not yet projected, so
    # finding them costs the same however long the ledger grows.
    IndexSpec(
        LEDGER,
        [("created_at", ASCENDING)],
        name="ledger_unprojected",
        options={"partialFilterExpression": {"projected": False}},
    ),
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
    IndexSpec(BADGE_DEFS, [("org", ASCENDING), ("badge_id", ASCENDING)], unique=True),
    IndexSpec(REWARDS, [("org", ASCENDING), ("created_at", DESCENDING)]),
    IndexSpec(REDEMPTIONS, [("org", ASCENDING), ("created_at", DESCENDING)]),
    IndexSpec(REDEMPTIONS, [("org", ASCENDING), ("advocate_id", ASCENDING), ("created_at", DESCENDING)]),
    IndexSpec(
        REDEMPTIONS,
        [("updated_at", ASCENDING)],
        name="redemptions_to_relay",
        options={"partialFilterExpression": {"needs_relay": True}},
    ),
    *DELIVERY_INDEXES,
    IndexSpec(KUDOS, [("org", ASCENDING), ("to", ASCENDING), ("created_at", DESCENDING)]),
    IndexSpec(GOALS, [("org", ASCENDING), ("advocate_id", ASCENDING)]),
    *(outbox_index(c) for c in OUTBOX_COLLECTIONS),
]


def now() -> datetime:
    # Millisecond precision, as MongoDB stores it: an event built from a document in memory and
    # the same event rebuilt later from the stored document (the relay) must be equal.
    at = datetime.now(UTC)
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def _key(*parts: str) -> str:
    return "|".join(parts)


async def _apply_once(
    coll: Any, doc_id: str, entry_id: str, update: Document, on_insert: Document | None = None
) -> bool:
    """Apply `update` to the document once per entry id, creating it with `on_insert` if missing:
    one atomic upsert that also records the entry id. True if this call applied it."""
    update = {**update, "$push": {**update.get("$push", {}), **mark_applied(entry_id)}}
    if on_insert:
        update["$setOnInsert"] = on_insert
    return await conditional_upsert(coll, {"_id": doc_id, **applied_once_filter(entry_id)}, update)


def _new_account(org: str, advocate_id: str, update: Document) -> Document:
    """A new account's fields, for `$setOnInsert`, less those `update` itself writes (MongoDB
    refuses two operators on one path; `$inc` and `$addToSet` create what they write)."""
    written = {path.split(".")[0] for fields in update.values() for path in fields}
    fields: Document = {
        "org": org,
        "advocate_id": advocate_id,
        "balance": 0,
        "lifetime": 0,
        "written_off": 0,
        "counters": {},
        "badges": [],
        "courses": [],
    }
    return {name: value for name, value in fields.items() if name not in written}


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

    async def upsert_advocate(self, org: str, advocate_id: str, fields: Document) -> None:
        await self.db[ADVOCATES].update_one(
            {"_id": _key(org, advocate_id)},
            {"$set": {**fields, "org": org, "advocate_id": advocate_id}},
            upsert=True,
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
        # Only the entries that differ: called for every profile event, it usually writes nothing.
        await self.db[BOARDS].update_many(
            {"org": org, "advocate_id": advocate_id, "visible": {"$ne": visible}},
            {"$set": {"visible": visible}},
        )

    # --- shares, caps ------------------------------------------------------------------------

    async def remember_share(
        self, org: str, share_id: str, fields: Document, team: str | None = None
    ) -> None:
        update: Document = {"$setOnInsert": {"org": org, "share_id": share_id, "points": 0, **fields}}
        if team is not None:
            update["$set"] = {"team": team}
        await conditional_upsert(self.db[SHARES], {"_id": _key(org, share_id)}, update)

    async def get_share(self, org: str, share_id: str) -> Document | None:
        return await self.db[SHARES].find_one({"_id": _key(org, share_id)}, {"applied_events": 0})

    async def mark_share_verified(self, org: str, share_id: str, click_id: str) -> bool:
        """True if this click is the share's verifying click (first time, or the same click again)."""
        doc = await self.db[SHARES].find_one_and_update(
            {"_id": _key(org, share_id), "verified_by": {"$in": [None, click_id]}},
            {"$set": {"verified_by": click_id}},
            projection={"_id": 1},
        )
        return doc is not None

    async def add_share_points(self, org: str, share_id: str, entry_id: str, points: int) -> None:
        await _apply_once(
            self.db[SHARES],
            _key(org, share_id),
            entry_id,
            {"$inc": {"points": points}},
            {"org": org, "share_id": share_id, "verified_by": None},
        )

    async def daily_grant(
        self,
        org: str,
        advocate_id: str,
        day: str,
        entry_id: str,
        grant: Callable[[int], int],
    ) -> int:
        """Reserve `grant(points the day has used)` points, once per entry (the rule is the
        domain's `capped`).

        The grant is kept in the day's document, so a retry of the same entry gets the same answer.
        How much fits depends on what the day has used, which no plain update can compute: the
        grant is a compare-and-set on the points read, tried again if another writer got there
        first.
        """
        coll = self.db[DAILY]
        doc_id = _key(org, advocate_id, day)
        doc = await coll.find_one({"_id": doc_id}) or {}
        while True:
            grants: dict[str, int] = doc.get("grants", {})
            if entry_id in grants:
                return int(grants[entry_id])
            used = int(doc.get("points", 0))
            granted = grant(used)
            # The day's first grant creates its document (with `points` from the filter).
            if await conditional_upsert(
                coll,
                {"_id": doc_id, "points": used, f"grants.{entry_id}": {"$exists": False}},
                {
                    "$inc": {"points": granted},
                    "$set": {f"grants.{entry_id}": granted},
                    "$setOnInsert": {"org": org, "advocate_id": advocate_id},
                },
            ):
                return granted
            doc = await coll.find_one({"_id": doc_id}) or {}

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
            await _apply_once(
                self.db[TAG_SHARES],
                _key(org, tag, advocate_id),
                event_id,
                {"$inc": {"shares": 1}},
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

    async def insert_entry(self, entry: Document, outbox: list[Document]) -> Document:
        """Insert the entry with its events queued, or return the one already there for the same
        (org, source event, kind)."""
        try:
            entry = with_outbox(entry, outbox)
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

    async def unprojected_entries(self, older_than: datetime, limit: int = 200) -> list[Document]:
        return (
            await self.db[LEDGER]
            .find({"projected": False, "created_at": {"$lt": older_than}})
            .limit(limit)
            .to_list()
        )

    # --- accounts ------------------------------------------------------------------------------

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
        """Apply an entry to the account once, creating the account if needed. A debit larger than
        the balance takes it to zero and records the difference as written off: the balance never
        goes negative."""
        coll = self.db[ACCOUNTS]
        doc_id = _key(org, advocate_id)
        update: Document = {"$inc": {"balance": balance, "lifetime": lifetime, **(inc or {})}}
        if add_to_set:
            update["$addToSet"] = add_to_set
        if balance >= 0:
            return await _apply_once(coll, doc_id, entry_id, update, _new_account(org, advocate_id, update))
        # A debit: whole, in one conditional update, while the balance covers it.
        result = await coll.update_one(
            {"_id": doc_id, "balance": {"$gte": -balance}, **applied_once_filter(entry_id)},
            {**update, "$push": mark_applied(entry_id)},
        )
        if result.modified_count:
            return True
        # Otherwise the part written off depends on the balance, which no plain update can
        # compute: a compare-and-set on the balance read, tried again if it moved meanwhile.
        await conditional_upsert(coll, {"_id": doc_id}, {"$setOnInsert": _new_account(org, advocate_id, {})})
        while True:
            doc = await coll.find_one({"_id": doc_id}, {"balance": 1, "applied_events": 1})
            assert doc is not None
            if entry_id in doc.get("applied_events", []):
                return False
            current = int(doc["balance"])
            write_off: Document = {
                **update,
                "$inc": {**update["$inc"], "balance": -current, "written_off": -balance - current},
                "$push": mark_applied(entry_id),
            }
            result = await coll.update_one(
                {"_id": doc_id, "balance": current, **applied_once_filter(entry_id)}, write_off
            )
            if result.modified_count:
                return True

    async def spend(self, org: str, advocate_id: str, spend_id: str, cost: int) -> bool:
        """Take `cost` from the balance in one conditional update; False when it is not there."""
        result = await self.db[ACCOUNTS].update_one(
            {"_id": _key(org, advocate_id), "balance": {"$gte": cost}, **applied_once_filter(spend_id)},
            {"$inc": {"balance": -cost}, "$push": mark_applied(spend_id)},
        )
        return bool(result.modified_count)

    async def raise_counter(self, org: str, advocate_id: str, counter: str, value: int) -> None:
        update: Document = {"$max": {f"counters.{counter}": value}}
        await conditional_upsert(
            self.db[ACCOUNTS],
            {"_id": _key(org, advocate_id)},
            {**update, "$setOnInsert": _new_account(org, advocate_id, update)},
        )

    async def add_badge_to_account(self, org: str, advocate_id: str, badge_id: str) -> None:
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
        update: Document = {"$inc": {"points": points}}
        if team is None:
            on_insert["team"] = None
        else:
            update["$set"] = {"team": team}
        await _apply_once(self.db[BOARDS], _key(org, period, advocate_id), entry_id, update, on_insert)

    async def add_to_team_board(self, org: str, period: str, team: str, entry_id: str, points: int) -> None:
        await _apply_once(
            self.db[TEAM_BOARDS],
            _key(org, period, team),
            entry_id,
            {"$inc": {"points": points}},
            {"org": org, "period": period, "team": team},
        )

    async def board_entries(self, org: str, period: str) -> list[Document]:
        """Every advocate's entry on one board (see standings.py for how they are served)."""
        fields = {"_id": 0, "advocate_id": 1, "points": 1, "team": 1, "visible": 1}
        # Small batches: each batch is decoded on the event loop, so a big one would hold
        # requests up (later batches are up to 16 MB otherwise).
        cursor = self.db[BOARDS].find({"org": org, "period": period}, fields, batch_size=2_000)
        return await cursor.to_list()

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

    async def insert_award(self, award: Document, outbox: list[Document]) -> bool:
        """Insert the award with its event queued; False if the advocate had it already."""
        try:
            await self.db[AWARDS].insert_one(with_outbox(award, outbox))
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

    async def reserve_reward(self, reward: Document) -> bool:
        """Take one unit of stock and the reward's price from its budget, in one conditional update.

        A null stock or budget means unlimited, and which of them a reward has is fixed when it is
        created, so the reward as read says which conditions and decrements apply.
        """
        price = int(reward.get("price_cents") or 0)
        query: Document = {"_id": reward["_id"], "org": reward["org"], "active": True}
        inc: Document = {"stock_taken": 1, "spent_cents": price}
        if reward.get("stock") is not None:
            query["stock"] = {"$gte": 1}
            inc["stock"] = -1
        if reward.get("budget_left_cents") is not None:
            query["budget_left_cents"] = {"$gte": price}
            inc["budget_left_cents"] = -price
        result = await self.db[REWARDS].update_one(query, {"$inc": inc})
        return bool(result.modified_count)

    async def release_reward(self, reward: Document, price_cents: int) -> None:
        """Give back what `reserve_reward` took, in one update."""
        inc: Document = {"stock_taken": -1, "spent_cents": -price_cents}
        if reward.get("stock") is not None:
            inc["stock"] = 1
        if reward.get("budget_left_cents") is not None:
            inc["budget_left_cents"] = price_cents
        await self.db[REWARDS].update_one({"_id": reward["_id"], "org": reward["org"]}, {"$inc": inc})

    async def insert_redemption(self, redemption: Document, outbox: list[Document]) -> None:
        await self.db[REDEMPTIONS].insert_one(with_outbox(redemption, outbox))

    async def get_redemption(self, org: str, redemption_id: str) -> Document | None:
        return await self.db[REDEMPTIONS].find_one({"_id": redemption_id, "org": org})

    async def move_redemption(
        self,
        org: str,
        redemption_id: str,
        from_statuses: list[str],
        to_status: str,
        by: str,
        extra: Document,
        outbox: list[Document],
    ) -> Document | None:
        """Compare-and-set the status, queueing its event in the same write. What the move
        leaves to do in other documents (`refund_pending`, `webhook_pending` in `extra`) marks
        the redemption `needs_relay` until it is done."""
        at = now()
        follow_up = (
            {"needs_relay": True} if extra.get("refund_pending") or extra.get("webhook_pending") else {}
        )
        return await self.db[REDEMPTIONS].find_one_and_update(
            {"_id": redemption_id, "org": org, "status": {"$in": from_statuses}},
            queue(
                {
                    "$set": {
                        "status": to_status,
                        "updated_at": at,
                        f"{to_status}_at": at,
                        f"{to_status}_by": by,
                        **follow_up,
                        **extra,
                    }
                },
                outbox,
            ),
            return_document=ReturnDocument.AFTER,
        )

    async def clear_webhook_pending(self, redemption_id: str) -> None:
        await self.db[REDEMPTIONS].update_one({"_id": redemption_id}, {"$set": {"webhook_pending": False}})

    async def finish_redemption_relay(self, redemption_id: str) -> None:
        await self.db[REDEMPTIONS].update_one(
            {"_id": redemption_id, "refund_pending": {"$ne": True}, "webhook_pending": {"$ne": True}},
            {"$set": {"needs_relay": False}},
        )

    async def claim_stock_return(self, redemption_id: str) -> bool:
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

    async def get_webhook(self, org: str) -> Target | None:
        doc = await self.db[WEBHOOKS].find_one({"_id": org})
        return None if doc is None else Target(url=doc["url"], secret=doc["secret"])

    # --- kudos ---------------------------------------------------------------------------------

    async def take_kudos_allowance(self, org: str, giver: str, week: str, allowance: int) -> bool:
        """Count one kudos against the giver's week, in one conditional upsert; False at the allowance."""
        if allowance < 1:
            return False  # an upsert would create the week's document with one given
        return await conditional_upsert(
            self.db[KUDOS_WEEKS],
            {"_id": _key(org, giver, week), "given": {"$lt": allowance}},
            {"$inc": {"given": 1}, "$setOnInsert": {"org": org, "giver": giver}},
        )

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
