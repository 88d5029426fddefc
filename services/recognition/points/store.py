"""The ledger, the accounts it is projected onto, and what the caps count (shares, days).

Exactly-once without transactions: a ledger entry's id is derived from (org, source event, kind)
and the ledger has a unique index on those, so an event applied twice inserts nothing the second
time. Every projection update records the entry id in the document it changes
(`applied_events`), so re-applying an entry after a crash changes nothing either.

Each write to a shared document (an account, a day's cap, a share) is one atomic
single-document update whose filter holds its condition, so any number of processes and
connections may write at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.recognition.points.domain import Account, AccountChange, LedgerEntry, ShareSeen
from services.recognition.rules.domain import Kind
from shared.documents import Documents
from shared.ids import ERASED
from shared.migrations import drop_index
from shared.mongo import (
    Document,
    IndexSpec,
    applied_once_filter,
    apply_once,
    conditional_upsert,
    joined_id,
    mark_applied,
    newest_first,
    pending_index,
    was_applied,
)
from shared.outbox import outbox_index, with_outbox
from shared.tenancy import TenantCollection, Tenants

LEDGER = "ledger"
ACCOUNTS = "accounts"
SHARES = "shares"
DAILY = "daily_points"

# The ledger's list of unpublished entries before shared/outbox.py, which nothing reads any more.
MIGRATIONS = [drop_index(LEDGER, "ledger_unpublished")]

INDEXES: list[IndexSpec] = [
    # The guarantee that one event changes the ledger once, whatever the redeliveries.
    IndexSpec(LEDGER, [("org", ASCENDING), ("source_event_id", ASCENDING), ("kind", ASCENDING)], unique=True),
    IndexSpec(LEDGER, [("org", ASCENDING), ("advocate_id", ASCENDING), ("created_at", DESCENDING)]),
    # The organisation's ledger (admins), in page order: else each page sorts all of its entries.
    IndexSpec(LEDGER, [("org", ASCENDING), ("created_at", DESCENDING), ("_id", ASCENDING)]),
    IndexSpec(LEDGER, [("org", ASCENDING), ("ref", ASCENDING), ("kind", ASCENDING)]),
    # The relay's pending work: a partial index holds only the entries not yet projected, so
    # finding them costs the same however long the ledger grows.
    pending_index(LEDGER, "created_at", {"projected": False}, name="ledger_unprojected"),
    # Ledger entries carry their chorus.reward.granted in an outbox (shared/outbox.py).
    outbox_index(LEDGER),
    IndexSpec(ACCOUNTS, [("org", ASCENDING), ("advocate_id", ASCENDING)], unique=True),
    # Who asked for each reversal, for their erasure: only reversals are in it, a small part of
    # the ledger.
    IndexSpec(
        LEDGER,
        [("org", ASCENDING), ("requested_by", ASCENDING)],
        name="ledger_reversals_requested_by",
        options={"partialFilterExpression": {"kind": str(Kind.REVERSAL)}},
    ),
]

ENTRY_DOCUMENTS = Documents(LedgerEntry)
# Accounts are written by update operators only (`_id`: joined_id of the org and the advocate):
# a field none has written yet, such as `posts`, reads as its default.
ACCOUNT_DOCUMENTS = Documents(Account, id_field=None)


def _new_account(advocate_id: str, update: Document) -> Document:
    """A new account's fields, for `$setOnInsert`, less those `update` itself writes (MongoDB
    refuses two operators on one path; `$inc` and `$addToSet` create what they write). By hand:
    update paths for `$setOnInsert`, not an account's document (which would add `posts`)."""
    written = {path.split(".")[0] for fields in update.values() for path in fields}
    fields: Document = {
        "advocate_id": advocate_id,
        "balance": 0,
        "lifetime": 0,
        "written_off": 0,
        "counters": {},
        "badges": [],
        "courses": [],
    }
    return {name: value for name, value in fields.items() if name not in written}


class PointsStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tenants = Tenants(db)

    # --- ledger --------------------------------------------------------------------------------

    async def insert_entry(self, entry: LedgerEntry, outbox: list[Document]) -> LedgerEntry:
        """Insert the entry with its events queued, or return the one already there for the same
        (org, source event, kind)."""
        ledger = self.tenants.of(entry.org, LEDGER)
        try:
            await ledger.insert_one(with_outbox(ENTRY_DOCUMENTS.document(entry), outbox))
            return entry
        except DuplicateKeyError:
            existing = await ledger.find_one({"source_event_id": entry.source_event_id, "kind": entry.kind})
            assert existing is not None
            return ENTRY_DOCUMENTS.entity(existing)

    async def entry(self, org: str, entry_id: str) -> LedgerEntry | None:
        return await ENTRY_DOCUMENTS.one(self.tenants.of(org, LEDGER), {"_id": entry_id})

    async def entries_by_ref(self, org: str, ref: str, kinds: list[str]) -> list[LedgerEntry]:
        cursor = self.tenants.of(org, LEDGER).find({"ref": ref, "kind": {"$in": kinds}})
        return [ENTRY_DOCUMENTS.entity(d) for d in await cursor.to_list()]

    async def mark_projected(self, org: str, entry_id: str) -> None:
        await self.tenants.of(org, LEDGER).update_one({"_id": entry_id}, {"$set": {"projected": True}})

    async def entries(
        self, org: str, advocate_id: str | None, *, after: tuple[datetime, str] | None, limit: int
    ) -> list[LedgerEntry]:
        query: Document = {} if advocate_id is None else {"advocate_id": advocate_id}
        cursor = newest_first(self.tenants.of(org, LEDGER), query, after, limit)
        return [ENTRY_DOCUMENTS.entity(d) for d in await cursor.to_list()]

    async def unprojected_entries(self, older_than: datetime, limit: int = 200) -> list[LedgerEntry]:
        ledger = self.tenants.across(LEDGER, why="the relay finishes every org's unprojected entries")
        cursor = ledger.find({"projected": False, "created_at": {"$lt": older_than}}).limit(limit)
        return [ENTRY_DOCUMENTS.entity(d) for d in await cursor.to_list()]

    # --- accounts ------------------------------------------------------------------------------

    async def account(self, org: str, advocate_id: str) -> Account | None:
        return await ACCOUNT_DOCUMENTS.one(
            self.tenants.of(org, ACCOUNTS), {"_id": joined_id(org, advocate_id)}
        )

    async def apply_to_account(
        self,
        org: str,
        advocate_id: str,
        entry_id: str,
        *,
        balance: int,
        lifetime: int,
        change: AccountChange | None = None,
    ) -> bool:
        """Apply an entry to the account once, creating the account if needed. A debit larger than
        the balance takes it to zero and records the difference as written off: the balance never
        goes negative."""
        accounts = self.tenants.of(org, ACCOUNTS)
        doc_id = joined_id(org, advocate_id)
        update: Document = {
            "$inc": {"balance": balance, "lifetime": lifetime, **(change.inc if change else {})}
        }
        if change and change.add_to_set:
            update["$addToSet"] = change.add_to_set
        if balance >= 0:
            return await apply_once(accounts, doc_id, entry_id, update, _new_account(advocate_id, update))
        # A debit: whole, in one conditional update, while the balance covers it.
        result = await accounts.update_one(
            {"_id": doc_id, "balance": {"$gte": -balance}, **applied_once_filter(entry_id)},
            {**update, "$push": mark_applied(entry_id)},
        )
        if result.modified_count:
            return True
        # Otherwise the part written off depends on the balance, which no plain update can
        # compute: a compare-and-set on the balance read, tried again if it moved meanwhile.
        await conditional_upsert(accounts, {"_id": doc_id}, {"$setOnInsert": _new_account(advocate_id, {})})
        while True:
            doc = await accounts.find_one({"_id": doc_id}, {"balance": 1, "applied_events": 1})
            assert doc is not None
            if entry_id in doc.get("applied_events", []):
                return False
            current = int(doc["balance"])
            write_off: Document = {
                **update,
                "$inc": {**update["$inc"], "balance": -current, "written_off": -balance - current},
                "$push": mark_applied(entry_id),
            }
            result = await accounts.update_one(
                {"_id": doc_id, "balance": current, **applied_once_filter(entry_id)}, write_off
            )
            if result.modified_count:
                return True

    async def spend(self, org: str, advocate_id: str, spend_id: str, cost: int) -> bool:
        """Take `cost` from the balance in one conditional update; True when it is taken, by this
        call or by an earlier try of the same spend, False when it is not there."""
        accounts = self.tenants.of(org, ACCOUNTS)
        account_id = joined_id(org, advocate_id)
        result = await accounts.update_one(
            {"_id": account_id, "balance": {"$gte": cost}, **applied_once_filter(spend_id)},
            {"$inc": {"balance": -cost}, "$push": mark_applied(spend_id)},
        )
        return bool(result.modified_count) or await was_applied(accounts, account_id, spend_id)

    async def raise_counter(self, org: str, advocate_id: str, counter: str, value: int) -> None:
        update: Document = {"$max": {f"counters.{counter}": value}}
        await conditional_upsert(
            self.tenants.of(org, ACCOUNTS),
            {"_id": joined_id(org, advocate_id)},
            {**update, "$setOnInsert": _new_account(advocate_id, update)},
        )

    async def add_badge(self, org: str, advocate_id: str, badge_id: str) -> None:
        await self.tenants.of(org, ACCOUNTS).update_one(
            {"_id": joined_id(org, advocate_id)}, {"$addToSet": {"badges": badge_id}}
        )

    # --- shares and days: what the caps count ---------------------------------------------------

    async def remember_share(
        self,
        org: str,
        share_id: str,
        advocate_id: str,
        *,
        content_id: str | None = None,
        tags: list[str] | None = None,
        team: str | None = None,
    ) -> None:
        """Keep a share the first time it is seen (what its event says about it, if it is the
        share's or a click's); a team, once known, is kept."""
        fields: Document = {"advocate_id": advocate_id}
        if content_id is not None:
            fields.update(content_id=content_id, tags=tags or [], verified_by=None)
        update: Document = {"$setOnInsert": {"share_id": share_id, "points": 0, **fields}}
        if team is not None:
            update["$set"] = {"team": team}
        await conditional_upsert(self.tenants.of(org, SHARES), {"_id": joined_id(org, share_id)}, update)

    async def share(self, org: str, share_id: str) -> ShareSeen | None:
        doc = await self.tenants.of(org, SHARES).find_one(
            {"_id": joined_id(org, share_id)}, {"points": 1, "team": 1}
        )
        return None if doc is None else ShareSeen(int(doc.get("points", 0)), doc.get("team"))

    async def mark_share_verified(self, org: str, share_id: str, click_id: str) -> bool:
        """True if this click is the share's verifying click (first time, or the same click again)."""
        doc = await self.tenants.of(org, SHARES).find_one_and_update(
            {"_id": joined_id(org, share_id), "verified_by": {"$in": [None, click_id]}},
            {"$set": {"verified_by": click_id}},
            projection={"_id": 1},
        )
        return doc is not None

    async def add_share_points(self, org: str, share_id: str, entry_id: str, points: int) -> None:
        """Count points on a share no per-share cap guards (one a cap set later will count)."""
        await apply_once(
            self.tenants.of(org, SHARES),
            joined_id(org, share_id),
            entry_id,
            {"$inc": {"points": points}},
            {"share_id": share_id, "verified_by": None},
        )

    async def share_grant(self, org: str, share_id: str, entry_id: str, grant: Callable[[int], int]) -> int:
        """Reserve `grant(points the share has used)` points of the share's cap, once per entry:
        the share and its clicks arrive on different topics, so they may be scored at once."""
        shares = self.tenants.of(org, SHARES)
        on_insert = {"share_id": share_id, "verified_by": None}
        return await _reserve(shares, joined_id(org, share_id), entry_id, grant, on_insert)

    async def settle_share_grant(
        self, org: str, share_id: str, entry_id: str, *, reserved: int, granted: int
    ) -> None:
        """Lower the entry's reservation on the share from `reserved` to what it was `granted` (the
        day's cap took the rest), so that the share's other events may have it. Once: a retry finds
        the reservation lowered already. A grant lowered to nothing is not kept, as `_reserve`
        keeps none: a viral share's clicks on a day whose cap is full would grow its document
        without bound."""
        kept: Document = (
            {"$set": {f"grants.{entry_id}": granted}} if granted else {"$unset": {f"grants.{entry_id}": ""}}
        )
        await self.tenants.of(org, SHARES).update_one(
            {"_id": joined_id(org, share_id), f"grants.{entry_id}": reserved},
            {"$inc": {"points": granted - reserved}, **kept},
        )

    async def daily_grant(
        self, org: str, advocate_id: str, day: str, entry_id: str, grant: Callable[[int], int]
    ) -> int:
        """Reserve `grant(points the day has used)` points, once per entry (the rule is the
        domain's `capped`)."""
        days = self.tenants.of(org, DAILY)
        doc_id = joined_id(org, advocate_id, day)
        return await _reserve(days, doc_id, entry_id, grant, {"advocate_id": advocate_id})

    async def erase(self, org: str, advocate_id: str, token: str) -> None:
        """The ledger keeps its amounts under an unlinkable token; the rest goes."""
        await self.tenants.of(org, LEDGER).update_many(
            {"advocate_id": advocate_id}, {"$set": {"advocate_id": token, "team": None}}
        )
        await self.tenants.of(org, SHARES).update_many(
            {"advocate_id": advocate_id}, {"$set": {"advocate_id": token}}
        )
        await self.tenants.of(org, DAILY).delete_many({"advocate_id": advocate_id})
        await self.tenants.of(org, ACCOUNTS).delete_one({"_id": joined_id(org, advocate_id)})
        # The reversals they asked for as staff (the same `sub`) stay, naming nobody. The kind
        # in the filter lets the partial index of reversals serve it.
        await self.tenants.of(org, LEDGER).update_many(
            {"kind": str(Kind.REVERSAL), "requested_by": advocate_id}, {"$set": {"requested_by": ERASED}}
        )


async def _reserve(
    coll: TenantCollection, doc_id: str, entry_id: str, grant: Callable[[int], int], on_insert: Document
) -> int:
    """Reserve `grant(points used)` in the document under a cap (a day's, a share's), once per
    entry.

    The grant is kept in the document, so a retry of the same entry gets the same answer. How much
    fits depends on what is used, which no plain update can compute: the grant is a compare-and-set
    on the points read, tried again if another writer got there first. A grant of nothing reserves
    nothing and is not kept (a retry asks again), so a full share's document stops growing.
    """
    fields = {"points": 1, f"grants.{entry_id}": 1}
    doc = await coll.find_one({"_id": doc_id}, fields) or {}
    while True:
        grants: dict[str, int] = doc.get("grants", {})
        if entry_id in grants:
            return int(grants[entry_id])
        used = int(doc.get("points", 0))
        granted = grant(used)
        if granted == 0:
            return 0
        # The first grant creates the document (with `points` from the filter).
        if await conditional_upsert(
            coll,
            {"_id": doc_id, "points": used, f"grants.{entry_id}": {"$exists": False}},
            {"$inc": {"points": granted}, "$set": {f"grants.{entry_id}": granted}, "$setOnInsert": on_insert},
        ):
            return granted
        doc = await coll.find_one({"_id": doc_id}, fields) or {}
