"""Sharing's MongoDB collections; the only module that touches them. Every query names the org.

- advocates       one per (org, advocate): profile, consents, networks
- training        one per (org, advocate): courses completed, newest policy acknowledged
- contents        projection of chorus.content: what may be shared, its URL, audience, window
- org_settings    projection of chorus.settings.updated and chorus.policy.published
- shares          one per share, with its code, target and the trace context it was made in
- daily_counts    shares per (org, advocate, UTC day), reserved atomically for the daily limit
- erasures        one per erasure request, holding its chorus.advocate.erased until it is sent

Advocates, shares and erasures carry the events their writes emit in their outbox
(shared/outbox.py).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pymongo.asynchronous.database import AsyncDatabase

from shared.idempotency import COLLECTION as IDEMPOTENCY_COLLECTION
from shared.mongo import Document, IndexSpec, conditional_upsert
from shared.outbox import OUTBOX, OUTBOX_SINCE, outbox_index, queue, with_outbox

ADVOCATES = "advocates"
TRAINING = "training"
CONTENTS = "contents"
ORG_SETTINGS = "org_settings"
SHARES = "shares"
DAILY_COUNTS = "daily_counts"
ERASURES = "erasures"

# Collections whose documents may carry an outbox (shared/outbox.py).
OUTBOX_COLLECTIONS = (ADVOCATES, SHARES, ERASURES)

INDEXES: list[IndexSpec] = [
    IndexSpec(ADVOCATES, [("org", 1), ("_id", 1)]),
    IndexSpec(CONTENTS, [("org", 1), ("status", 1)]),
    IndexSpec(CONTENTS, [("updated_at", 1)]),
    IndexSpec(ORG_SETTINGS, [("updated_at", 1)]),
    IndexSpec(SHARES, [("code", 1)], unique=True),
    IndexSpec(SHARES, [("org", 1), ("advocate_id", 1), ("_id", -1)]),
    IndexSpec(SHARES, [("org", 1), ("_id", -1)]),
    IndexSpec(SHARES, [("status", 1), ("send_at", 1)]),
    *(outbox_index(c) for c in OUTBOX_COLLECTIONS),
]


def advocate_key(org: str, advocate_id: str) -> str:
    return f"{org}:{advocate_id}"


def content_key(org: str, content_id: str) -> str:
    return f"{org}:{content_id}"


class SharingStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db

    # --- advocates ---------------------------------------------------------------------------

    async def get_advocate(self, org: str, advocate_id: str) -> Document | None:
        return await self.db[ADVOCATES].find_one({"_id": advocate_key(org, advocate_id), "org": org})

    async def save_advocate(
        self, org: str, advocate_id: str, profile: Document, now: datetime, outbox: list[Document]
    ) -> None:
        """Save the profile and queue its event, in one write."""
        await self.db[ADVOCATES].update_one(
            {"_id": advocate_key(org, advocate_id), "org": org},
            queue(
                {
                    "$set": {**profile, "org": org, "advocate_id": advocate_id, "updated_at": now},
                    "$setOnInsert": {"enrolled_at": now},
                },
                outbox,
            ),
            upsert=True,
        )

    async def record_erasure(self, org: str, erasure_id: str, now: datetime, outbox: list[Document]) -> None:
        """The erasure request and its event. Once the event is sent, the document says only that
        an erasure was asked for in the organisation, and when."""
        await self.db[ERASURES].insert_one(
            with_outbox({"_id": erasure_id, "org": org, "requested_at": now}, outbox)
        )

    async def list_advocates(self, org: str, after: str | None, limit: int) -> list[Document]:
        query: Document = {"org": org}
        if after is not None:
            query["_id"] = {"$gt": after}
        cursor = self.db[ADVOCATES].find(query).sort("_id", 1).limit(limit)
        return [doc async for doc in cursor]

    # --- training ----------------------------------------------------------------------------

    async def record_course(self, org: str, advocate_id: str, course_id: str) -> None:
        await self.db[TRAINING].update_one(
            {"_id": advocate_key(org, advocate_id), "org": org},
            {"$addToSet": {"completed_course_ids": course_id}, "$set": {"advocate_id": advocate_id}},
            upsert=True,
        )

    async def record_policy_acknowledgement(self, org: str, advocate_id: str, version: int) -> None:
        await self.db[TRAINING].update_one(
            {"_id": advocate_key(org, advocate_id), "org": org},
            {"$max": {"acknowledged_policy_version": version}, "$set": {"advocate_id": advocate_id}},
            upsert=True,
        )

    async def get_training(self, org: str, advocate_id: str) -> Document | None:
        return await self.db[TRAINING].find_one({"_id": advocate_key(org, advocate_id), "org": org})

    # --- content and settings projections ----------------------------------------------------

    async def upsert_content(self, org: str, content_id: str, fields: Document, now: datetime) -> None:
        await self.db[CONTENTS].update_one(
            {"_id": content_key(org, content_id), "org": org},
            {"$set": {**fields, "org": org, "content_id": content_id, "updated_at": now}},
            upsert=True,
        )

    async def set_content_status(self, org: str, content_id: str, status: str, now: datetime) -> None:
        # An archive or a rejection may overtake nothing we know of: keep the status anyway, so a
        # later snapshot of an unknown item does not make it shareable by mistake.
        await self.db[CONTENTS].update_one(
            {"_id": content_key(org, content_id), "org": org},
            {"$set": {"status": status, "org": org, "content_id": content_id, "updated_at": now}},
            upsert=True,
        )

    async def get_content(self, org: str, content_id: str) -> Document | None:
        return await self.db[CONTENTS].find_one({"_id": content_key(org, content_id), "org": org})

    async def published_contents(self, org: str, after: str | None, limit: int) -> list[Document]:
        query: Document = {"org": org, "status": "published"}
        if after is not None:
            query["_id"] = {"$gt": after}
        cursor = self.db[CONTENTS].find(query).sort("_id", 1).limit(limit)
        return [doc async for doc in cursor]

    async def contents_changed_since(self, since: datetime) -> list[Document]:
        cursor = self.db[CONTENTS].find(
            {"updated_at": {"$gte": since}},
            {"org": 1, "content_id": 1, "status": 1, "expires_at": 1, "updated_at": 1},
        )
        return [doc async for doc in cursor]

    async def save_settings(self, org: str, fields: Document, now: datetime) -> None:
        await self.db[ORG_SETTINGS].update_one(
            {"_id": org}, {"$set": {**fields, "updated_at": now}}, upsert=True
        )

    async def record_policy_version(self, org: str, version: int, now: datetime) -> None:
        await self.db[ORG_SETTINGS].update_one(
            {"_id": org}, {"$max": {"policy_version": version}, "$set": {"updated_at": now}}, upsert=True
        )

    async def get_settings(self, org: str) -> Document | None:
        return await self.db[ORG_SETTINGS].find_one({"_id": org})

    async def settings_changed_since(self, since: datetime) -> list[Document]:
        return [doc async for doc in self.db[ORG_SETTINGS].find({"updated_at": {"$gte": since}})]

    # --- shares ------------------------------------------------------------------------------

    async def reserve_daily_share(self, org: str, advocate_id: str, day: str, limit: int | None) -> bool:
        """Count one share for the day unless the limit is reached (one atomic document update,
        whose update count says whether this share was counted)."""
        key = f"{org}:{advocate_id}:{day}"
        query: Document = {"_id": key, "org": org}
        if limit is not None:
            query["count"] = {"$lt": limit}
        return await conditional_upsert(
            self.db[DAILY_COUNTS],
            query,
            {"$inc": {"count": 1}, "$setOnInsert": {"advocate_id": advocate_id, "day": day}},
        )

    async def release_daily_share(self, org: str, advocate_id: str, day: str) -> None:
        await self.db[DAILY_COUNTS].update_one(
            {"_id": f"{org}:{advocate_id}:{day}", "org": org}, {"$inc": {"count": -1}}
        )

    async def insert_share(self, share: Document, outbox: list[Document]) -> None:
        await self.db[SHARES].insert_one(with_outbox(share, outbox))

    async def get_share(self, org: str, share_id: str) -> Document | None:
        return await self.db[SHARES].find_one({"_id": share_id, "org": org})

    async def share_by_code(self, code: str) -> Document | None:
        # Public lookup: the code alone identifies the share (it is unguessable and unique).
        return await self.db[SHARES].find_one({"code": code}, {OUTBOX: 0, OUTBOX_SINCE: 0})

    async def list_shares(
        self, org: str, advocate_id: str | None, before: str | None, limit: int
    ) -> list[Document]:
        query: Document = {"org": org}
        if advocate_id is not None:
            query["advocate_id"] = advocate_id
        if before is not None:
            query["_id"] = {"$lt": before}
        cursor = self.db[SHARES].find(query).sort("_id", -1).limit(limit)
        return [doc async for doc in cursor]

    async def due_shares(self, now: datetime, limit: int) -> list[Document]:
        """Across organisations: scheduled shares whose time has come."""
        return await self.db[SHARES].find(due_filter(now)).limit(limit).to_list()

    async def mark_share_sent(
        self, org: str, share_id: str, shared_at: datetime, outbox: list[Document]
    ) -> bool:
        """Mark a pending share sent and queue its event, in one write; False if it was not
        pending any more (another replica's job sent it)."""
        result = await self.db[SHARES].update_one(
            {"_id": share_id, "org": org, "status": "pending"},
            queue({"$set": {"status": "sent", "shared_at": shared_at}}, outbox),
        )
        return result.modified_count == 1

    # --- erasure -----------------------------------------------------------------------------

    async def erase_advocate(self, org: str, advocate_id: str, tombstone: str) -> dict[str, int]:
        """Remove the advocate's personal data; their shares stay (links keep working) under a
        tombstone id with no message, team or department."""
        counts: dict[str, int] = {}
        key = advocate_key(org, advocate_id)
        counts[ADVOCATES] = (await self.db[ADVOCATES].delete_many({"_id": key, "org": org})).deleted_count
        counts[TRAINING] = (await self.db[TRAINING].delete_many({"_id": key, "org": org})).deleted_count
        counts[DAILY_COUNTS] = (
            await self.db[DAILY_COUNTS].delete_many({"org": org, "advocate_id": advocate_id})
        ).deleted_count
        result = await self.db[SHARES].update_many(
            {"org": org, "advocate_id": advocate_id},
            {
                "$set": {"advocate_id": tombstone, "message": "", "erased_at": datetime.now(UTC)},
                "$unset": {"team": "", "department": ""},
            },
        )
        counts[SHARES] = result.modified_count
        # Stored responses of share creates name the advocate; their key scope does too.
        prefix = re.escape(f"{org}:share:{advocate_id}:")
        counts[IDEMPOTENCY_COLLECTION] = (
            await self.db[IDEMPOTENCY_COLLECTION].delete_many({"_id": {"$regex": f"^{prefix}"}, "org": org})
        ).deleted_count
        await self.db[CONTENTS].update_many(
            {"org": org, "author_advocate_id": advocate_id}, {"$set": {"author_advocate_id": None}}
        )
        return counts

    async def share_ids_of(self, org: str, advocate_id: str) -> list[str]:
        cursor = self.db[SHARES].find({"org": org, "advocate_id": advocate_id}, {"_id": 1})
        return [doc["_id"] async for doc in cursor]


def due_filter(now: datetime) -> Document:
    """Pending shares whose time has come: served by the (status, send_at) index, whose pending
    entries are the only ones it reads (sent shares are never scanned)."""
    return {"status": "pending", "send_at": {"$lte": now}}
