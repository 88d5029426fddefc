"""The content library's MongoDB collection; the only module that touches it.

State and its events in one single-document write: a write that must emit events queues them in
the outbox of the same document (shared/outbox.py). Refused input never reaches a write, so it
stores nothing and emits nothing. Writes to an existing item are optimistic: the document carries
a `version` that every update checks and increments, so two concurrent transitions cannot both
apply. Every query goes through shared/tenancy.py (the org is added there).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import datetime

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from services.content.common import Viewer
from services.content.library.domain import Audience, ContentFields, ContentItem, Status, SuggestedPost
from shared.migrations import drop_index
from shared.mongo import (
    Document,
    IndexSpec,
    applied_once_filter,
    erase_person,
    made_with_key_filter,
    mark_applied,
)
from shared.outbox import adopt_serialised_outbox, outbox_index, queue, with_outbox
from shared.tenancy import Tenants

CONTENT = "content"
OUTBOX_COLLECTIONS = (CONTENT,)
# Where an item can be when its window ends: the expiry sweeper archives it from there.
EXPIRING = (Status.PUBLISHED, Status.PENDING_REVIEW)

# The outbox before shared/outbox.py: its pending events adopted, then its index dropped. The
# creator's index from before it held the request's key too: the new one serves erasure as well.
MIGRATIONS = [
    adopt_serialised_outbox(CONTENT),
    drop_index(CONTENT, "outbox_pending_1"),
    drop_index(CONTENT, "org_1_created_by_1"),
]

INDEXES: list[IndexSpec] = [
    IndexSpec(CONTENT, [("org", ASCENDING), ("status", ASCENDING), ("_id", DESCENDING)]),
    IndexSpec(CONTENT, [("org", ASCENDING), ("author_advocate_id", ASCENDING), ("_id", DESCENDING)]),
    IndexSpec(CONTENT, [("status", ASCENDING), ("expires_at", ASCENDING)]),  # the expiry sweeper
    # Erasure, and a create's retry looking for the item its first try made (`made_with_key`).
    IndexSpec(CONTENT, [("org", ASCENDING), ("created_by", ASCENDING), ("request_key", ASCENDING)]),
    # Erasure of the staff member who published items.
    IndexSpec(CONTENT, [("org", ASCENDING), ("published_by", ASCENDING)]),
    outbox_index(CONTENT),
]


# An item that was never the organisation's content: never published, whatever its state (a
# submission withdrawn, or archived by the sweeper while it waited for review, is archived).
NEVER_PUBLISHED: Document = {
    "$or": [
        {"status": {"$in": [str(Status.DRAFT), str(Status.PENDING_REVIEW), str(Status.REJECTED)]}},
        {"status": str(Status.ARCHIVED), "published_at": None},
    ]
}


@dataclass(frozen=True)
class ContentQuery:
    """What a content list asks for; None means no filter on that field."""

    status: Status | None = Status.PUBLISHED
    live_at: datetime | None = None  # only items inside their publish window at this time
    audience_of: Viewer | None = None  # only items whose audience includes this caller
    author_advocate_id: str | None = None
    tag: str | None = None
    content_type: str | None = None
    language: str | None = None
    network: str | None = None
    text: str | None = None
    published_since: datetime | None = None


def _content_doc(item: ContentItem) -> Document:
    """By hand: the document flattens the item's `fields` (its type as `type`), which Documents
    does not."""
    f = item.fields
    return {
        "_id": item.id,
        "org": item.org,
        "status": str(item.status),
        "type": f.content_type,
        "title": f.title,
        "url": f.url,
        "summary": f.summary,
        "image_url": f.image_url,
        "tags": f.tags,
        "language": f.language,
        "audience": dataclasses.asdict(f.audience),
        "networks": f.networks,  # precomputed for the network filter
        "starts_at": f.starts_at,
        "expires_at": f.expires_at,
        "suggested_posts": [dataclasses.asdict(p) for p in f.suggested_posts],
        "author_advocate_id": item.author_advocate_id,
        "created_by": item.created_by,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
        "published_at": item.published_at,
        "published_by": item.published_by,
        "rejection_reason": item.rejection_reason,
        "archive_reason": item.archive_reason,
        "request_key": item.request_key,
    }


def _content_item(doc: Document) -> ContentItem:
    """By hand, as `_content_doc`: the item's `fields` are the document's own."""
    audience = doc.get("audience") or {}
    fields = ContentFields(
        content_type=doc["type"],
        title=doc["title"],
        url=doc["url"],
        summary=doc.get("summary"),
        image_url=doc.get("image_url"),
        tags=list(doc.get("tags") or []),
        language=doc.get("language"),
        audience=Audience(
            list(audience.get("teams") or []),
            list(audience.get("departments") or []),
            list(audience.get("locations") or []),
        ),
        starts_at=doc.get("starts_at"),
        expires_at=doc.get("expires_at"),
        suggested_posts=[
            SuggestedPost(p["network"], p.get("language"), p["text"])
            for p in doc.get("suggested_posts") or []
        ],
    )
    return ContentItem(
        id=doc["_id"],
        org=doc["org"],
        fields=fields,
        status=Status(doc["status"]),
        created_by=doc["created_by"],
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        author_advocate_id=doc.get("author_advocate_id"),
        published_at=doc.get("published_at"),
        published_by=doc.get("published_by"),
        rejection_reason=doc.get("rejection_reason"),
        share_count=doc.get("share_count", 0),
        archive_reason=doc.get("archive_reason"),
        request_key=doc.get("request_key"),
    )


def _either(*conditions: Document) -> Document:
    return {"$or": list(conditions)}


def _content_clauses(query: ContentQuery) -> list[Document]:
    """The library query's clauses, all to hold; the tenant collection adds the organisation."""
    clauses: list[Document] = []
    if query.status is not None:
        clauses.append({"status": str(query.status)})
    if query.live_at is not None:
        clauses.append(_either({"starts_at": None}, {"starts_at": {"$lte": query.live_at}}))
        clauses.append(_either({"expires_at": None}, {"expires_at": {"$gt": query.live_at}}))
    if (viewer := query.audience_of) is not None:
        for name, value in (
            ("teams", viewer.team),
            ("departments", viewer.department),
            ("locations", viewer.location),
        ):
            everyone = {f"audience.{name}": {"$size": 0}}
            clauses.append(_either(everyone, {f"audience.{name}": value}) if value else everyone)
    if query.author_advocate_id is not None:
        clauses.append({"author_advocate_id": query.author_advocate_id})
    if query.tag is not None:
        clauses.append({"tags": query.tag.strip().lower()})
    if query.content_type is not None:
        clauses.append({"type": query.content_type})
    if query.language is not None:
        clauses.append({"language": query.language})
    if query.network is not None:
        clauses.append({"networks": query.network})
    if query.text:
        # A case-insensitive substring match: no index serves it, but the org and status clauses
        # narrow the scan first (library sizes).
        pattern = {"$regex": re.escape(query.text), "$options": "i"}
        clauses.append(_either({"title": pattern}, {"summary": pattern}))
    if query.published_since is not None:
        clauses.append({"published_at": {"$gte": query.published_since}})
    return clauses


def expired_filter(status: Status, now: datetime) -> Document:
    """Items in `status` whose window has ended: one range of the (status, expires_at) index.
    A query per status rather than `$in`: MongoDB scans the index for both, but the local store
    (SecantusDB) plans `$in` next to a range as a collection scan."""
    return {"status": str(status), "expires_at": {"$lte": now}}


class LibraryStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._tenants = Tenants(db)

    async def insert_content(self, item: ContentItem, outbox: list[Document]) -> None:
        items = self._tenants.of(item.org, CONTENT)
        await items.insert_one(with_outbox({**_content_doc(item), "version": 1}, outbox))

    async def made_with_key(self, org: str, created_by: str, key: str, now: datetime) -> ContentItem | None:
        """The item `created_by` made by a request with this Idempotency-Key, in the key's lifetime."""
        doc = await self._tenants.of(org, CONTENT).find_one(
            {"created_by": created_by, **made_with_key_filter(key, now)}
        )
        return None if doc is None else _content_item(doc)

    async def get_content(self, org: str, content_id: str) -> tuple[ContentItem, int] | None:
        doc = await self._tenants.of(org, CONTENT).find_one({"_id": content_id})
        return (_content_item(doc), doc["version"]) if doc else None

    async def save_content(self, item: ContentItem, expected_version: int, outbox: list[Document]) -> bool:
        """Write the item and queue its events if nobody changed it since `expected_version`."""
        doc = _content_doc(item)
        del doc["_id"]
        result = await self._tenants.of(item.org, CONTENT).update_one(
            {"_id": item.id, "version": expected_version},
            queue({"$set": doc, "$inc": {"version": 1}}, outbox),
        )
        return result.modified_count == 1

    async def list_content(
        self, org: str, query: ContentQuery, *, limit: int, before_id: str | None
    ) -> list[ContentItem]:
        clauses = _content_clauses(query)
        if before_id is not None:
            clauses.append({"_id": {"$lt": before_id}})
        filter_ = {"$and": clauses} if clauses else {}
        cursor = self._tenants.of(org, CONTENT).find(filter_).sort("_id", DESCENDING).limit(limit)
        return [_content_item(doc) async for doc in cursor]

    async def expired_content(self, now: datetime, *, limit: int) -> list[tuple[ContentItem, int]]:
        """Across organisations: items still published or waiting whose window has ended."""
        items = self._tenants.across(CONTENT, why="the expiry sweeper archives every org's expired items")
        found: list[tuple[ContentItem, int]] = []
        for status in EXPIRING:
            if len(found) >= limit:
                break
            cursor = items.find(expired_filter(status, now)).limit(limit - len(found))
            found += [(_content_item(doc), doc["version"]) async for doc in cursor]
        return found

    async def count_share(self, org: str, content_id: str, event_id: str) -> None:
        """One more share of the item; the event id kept in the document makes this happen once."""
        await self._tenants.of(org, CONTENT).update_one(
            {"_id": content_id, **applied_once_filter(event_id)},
            {"$inc": {"share_count": 1}, "$push": mark_applied(event_id)},
        )

    async def erase_author(self, org: str, advocate_id: str) -> None:
        """An erased advocate's own submissions that never became the organisation's content
        (drafts, pending, rejected, withdrawn) go; the rest stays, its author anonymised, and so
        does what they made or published as staff (the same `sub`), naming nobody."""
        items = self._tenants.of(org, CONTENT)
        await items.delete_many({"author_advocate_id": advocate_id, **NEVER_PUBLISHED})
        # Each update raises the version: a save that read the item before (an edit, the
        # sweeper) is then refused instead of writing their id back.
        await items.update_many(
            {"author_advocate_id": advocate_id},
            {"$set": {"author_advocate_id": None, "author_erased": True}, "$inc": {"version": 1}},
        )
        # The key of the request that made an item is the client's text, which may name them.
        await erase_person(items, "created_by", advocate_id, also_clear=("request_key",), versioned=True)
        await erase_person(items, "published_by", advocate_id, versioned=True)
