"""Shares' collections; typed entities in and out.

- shares         one per share, with its code, target and the trace context it was made in;
                 carries its chorus.share.made in its outbox until sent
                 `link_changed_at` says when what its link leads to last changed after it was
                 made (the share cancelled, its advocate erased): the redirect's replicas read
                 it to drop what they hold in memory of the link
- daily_counts   shares per (org, advocate, day in the org's time zone), reserved atomically for
                 the daily limit; a cancelled share gives its slot back once (the count
                 remembers the shares it released, `mark_applied`)
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import NamedTuple

from pymongo.asynchronous.database import AsyncDatabase

from services.sharing.shares.domain import Share
from shared.documents import Documents
from shared.idempotency import COLLECTION as IDEMPOTENCY_COLLECTION
from shared.mongo import (
    Document,
    IndexSpec,
    applied_once_filter,
    conditional_upsert,
    made_with_key_filter,
    mark_applied,
    pending_index,
)
from shared.outbox import OUTBOX, OUTBOX_SINCE, outbox_index, queue, with_outbox
from shared.tenancy import Tenants

SHARES = "shares"
DAILY_COUNTS = "daily_counts"

OUTBOX_COLLECTIONS = (SHARES,)

# A cancelled share whose daily-limit slot is not given back yet: set by the write that cancels
# it, cleared once the slot is released (the due-share job finishes what a stopped process left).
SLOT_TO_RELEASE: Document = {"slot_to_release": True}

LINK_CHANGED_AT = "link_changed_at"

INDEXES: list[IndexSpec] = [
    IndexSpec(SHARES, [("code", 1)], unique=True),
    IndexSpec(SHARES, [("org", 1), ("advocate_id", 1), ("_id", -1)]),
    IndexSpec(SHARES, [("org", 1), ("_id", -1)]),
    IndexSpec(SHARES, [("status", 1), ("send_at", 1)]),
    IndexSpec(SHARES, [("org", 1), ("advocate_id", 1), ("request_key", 1)]),
    pending_index(SHARES, "slot_to_release", SLOT_TO_RELEASE, name="shares_slot_to_release"),
    # The redirect's periodic read of links changed since its last look: only those shares.
    IndexSpec(SHARES, [(LINK_CHANGED_AT, 1)], options={"sparse": True}),
    *(outbox_index(c) for c in OUTBOX_COLLECTIONS),
]


def due_filter(now: datetime) -> Document:
    """Pending shares whose time has come: served by the (status, send_at) index, whose pending
    entries are the only ones it reads (sent shares are never scanned)."""
    return {"status": "pending", "send_at": {"$lte": now}}


def _day_key(org: str, advocate_id: str, day: str) -> str:
    return f"{org}:{advocate_id}:{day}"


def _cancelled(now: datetime) -> Document:
    """A pending share cancelled, marked to give its daily-limit slot back in the same write."""
    return {"$set": {"status": "cancelled", "cancelled_at": now, LINK_CHANGED_AT: now, **SLOT_TO_RELEASE}}


class LinkChange(NamedTuple):
    """A share's link whose target changed (cancelled, its advocate erased) at `at`."""

    code: str
    at: datetime


# Shares made before the event id (and the message) were kept lack them.
SHARE_DOCUMENTS = Documents(Share, older={"message": "", "event_id": "", "trace": {}})


class SharesStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tenants = Tenants(db)

    async def reserve_daily_share(self, org: str, advocate_id: str, day: str, limit: int | None) -> bool:
        """Count one share for the day unless the limit is reached (one atomic document update,
        whose update count says whether this share was counted)."""
        query: Document = {"_id": _day_key(org, advocate_id, day)}
        if limit is not None:
            query["count"] = {"$lt": limit}
        return await conditional_upsert(
            self.tenants.of(org, DAILY_COUNTS),
            query,
            {"$inc": {"count": 1}, "$setOnInsert": {"advocate_id": advocate_id, "day": day}},
        )

    async def release_daily_share(self, org: str, advocate_id: str, day: str) -> None:
        await self.tenants.of(org, DAILY_COUNTS).update_one(
            {"_id": _day_key(org, advocate_id, day)}, {"$inc": {"count": -1}}
        )

    async def release_cancelled_share(self, share: Share) -> None:
        """Give a cancelled share's slot back to its day, once whatever the retries (the count
        remembers the share), then clear the share's mark."""
        if share.limit_day is not None:
            await self.tenants.of(share.org, DAILY_COUNTS).update_one(
                {
                    "_id": _day_key(share.org, share.advocate_id, share.limit_day),
                    "count": {"$gt": 0},
                    **applied_once_filter(share.id),
                },
                {"$inc": {"count": -1}, "$push": mark_applied(share.id)},
            )
        await self.tenants.of(share.org, SHARES).update_one({"_id": share.id}, {"$unset": SLOT_TO_RELEASE})

    async def slots_to_release(self, org: str, advocate_id: str) -> list[Share]:
        """The advocate's cancelled shares whose slot is not given back yet."""
        found = self.tenants.of(org, SHARES).find({"advocate_id": advocate_id, **SLOT_TO_RELEASE})
        return [SHARE_DOCUMENTS.entity(d) async for d in found]

    async def slots_to_release_across(self, limit: int) -> list[Share]:
        """Across organisations: cancelled shares whose slot a stopped process did not give back."""
        found = self.tenants.across(SHARES, why="the sweep of every organisation's cancelled shares' slots")
        return [SHARE_DOCUMENTS.entity(d) for d in await found.find(SLOT_TO_RELEASE).limit(limit).to_list()]

    async def insert(self, share: Share, outbox: list[Document]) -> None:
        await self.tenants.of(share.org, SHARES).insert_one(
            with_outbox(SHARE_DOCUMENTS.document(share), outbox)
        )

    async def made_with_key(self, org: str, advocate_id: str, key: str, now: datetime) -> Share | None:
        """The advocate's share made by a request with this Idempotency-Key, in the key's lifetime."""
        return await SHARE_DOCUMENTS.one(
            self.tenants.of(org, SHARES), {"advocate_id": advocate_id, **made_with_key_filter(key, now)}
        )

    async def by_code(self, code: str) -> Share | None:
        doc = await self.tenants.across(
            SHARES, why="the public redirect: a share's code is a global, unguessable secret"
        ).find_one({"code": code}, {OUTBOX: 0, OUTBOX_SINCE: 0})
        return None if doc is None else SHARE_DOCUMENTS.entity(doc)

    async def page(
        self, org: str, advocate_id: str | None, before: str | None, limit: int
    ) -> tuple[list[Share], str | None]:
        """Up to `limit` shares, newest first, before `before`; and the id to go on from."""
        query: Document = {}
        if advocate_id is not None:
            query["advocate_id"] = advocate_id
        if before is not None:
            query["_id"] = {"$lt": before}
        docs = await self.tenants.of(org, SHARES).find(query).sort("_id", -1).limit(limit + 1).to_list()
        more = len(docs) > limit
        docs = docs[:limit]
        return [SHARE_DOCUMENTS.entity(d) for d in docs], docs[-1]["_id"] if more else None

    async def due(self, now: datetime, limit: int) -> list[Share]:
        """Across organisations: scheduled shares whose time has come."""
        found = self.tenants.across(SHARES, why="the sweep of every organisation's due scheduled shares")
        return [SHARE_DOCUMENTS.entity(d) for d in await found.find(due_filter(now)).limit(limit).to_list()]

    async def mark_sent(self, share: Share, shared_at: datetime, outbox: list[Document]) -> bool:
        """Mark a pending share sent and queue its event, in one write; False if it was not
        pending any more (another replica's job sent it)."""
        result = await self.tenants.of(share.org, SHARES).update_one(
            {"_id": share.id, "status": "pending"},
            queue({"$set": {"status": "sent", "shared_at": shared_at}}, outbox),
        )
        return result.modified_count == 1

    async def cancel(self, share: Share, now: datetime) -> bool:
        """Cancel one pending share (the due sweep found it may no longer go out); False if it
        was not pending any more. Conditional on `pending` as `mark_sent` is."""
        result = await self.tenants.of(share.org, SHARES).update_one(
            {"_id": share.id, "status": "pending"}, _cancelled(now)
        )
        return result.modified_count == 1

    async def cancel_pending(self, org: str, advocate_id: str, now: datetime) -> int:
        """Cancel the advocate's scheduled shares not yet out; how many. A share the sweep is
        sending at this moment is either sent (and stays) or cancelled, never both: both writes
        are conditional on `pending`."""
        result = await self.tenants.of(org, SHARES).update_many(
            {"advocate_id": advocate_id, "status": "pending"}, _cancelled(now)
        )
        return result.modified_count

    async def codes_of(self, org: str, advocate_id: str) -> list[str]:
        cursor = self.tenants.of(org, SHARES).find({"advocate_id": advocate_id}, {"code": 1})
        return [doc["code"] async for doc in cursor]

    async def links_changed_since(self, since: datetime) -> list[LinkChange]:
        """Across organisations: links whose share was cancelled or whose advocate was erased at
        `since` or later."""
        changed = self.tenants.across(SHARES, why="the redirect's in-memory links of every organisation")
        cursor = changed.find({LINK_CHANGED_AT: {"$gte": since}}, {"code": 1, LINK_CHANGED_AT: 1})
        return [LinkChange(d["code"], d[LINK_CHANGED_AT]) async for d in cursor]

    async def erase_advocate(
        self, org: str, advocate_id: str, tombstone: str, now: datetime
    ) -> dict[str, int]:
        """The advocate's shares stay (links keep working) under a tombstone id with no message,
        team or department; their daily counts and stored share responses go."""
        counts: dict[str, int] = {}
        counts[DAILY_COUNTS] = (
            await self.tenants.of(org, DAILY_COUNTS).delete_many({"advocate_id": advocate_id})
        ).deleted_count
        result = await self.tenants.of(org, SHARES).update_many(
            {"advocate_id": advocate_id},
            {
                "$set": {
                    "advocate_id": tombstone,
                    "message": "",
                    "request_key": None,
                    "erased_at": now,
                    LINK_CHANGED_AT: now,
                },
                "$unset": {"team": "", "department": ""},
            },
        )
        counts[SHARES] = result.modified_count
        # Stored responses of share creates name the advocate; their key scope does too.
        prefix = re.escape(f"{org}:share:{advocate_id}:")
        counts[IDEMPOTENCY_COLLECTION] = (
            await self.tenants.of(org, IDEMPOTENCY_COLLECTION).delete_many({"_id": {"$regex": f"^{prefix}"}})
        ).deleted_count
        return counts
