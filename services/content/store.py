"""The only module that touches MongoDB: content, settings, policy, courses and progress.

State and its events in one single-document write: every write that must emit events queues
them in the outbox of the same document (shared/outbox.py), and the service's outbox relay
publishes them. Refused input never reaches a write, so it stores nothing and emits nothing.

Writes to an existing item are optimistic: the document carries a `version` that every update
checks and increments, so two concurrent transitions cannot both apply.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import datetime

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.content.domain import (
    Audience,
    ContentFields,
    ContentItem,
    Module,
    OrgSettings,
    Status,
    SuggestedPost,
    Viewer,
)
from shared.mongo import Document, IndexSpec, applied_once_filter, mark_applied
from shared.outbox import outbox_index, queue, with_outbox

CONTENT = "content"
SETTINGS = "settings"
POLICIES = "policies"
POLICY_ACKS = "policy_acks"
COURSES = "courses"
COURSE_PROGRESS = "course_progress"

# Collections whose documents may carry an outbox (shared/outbox.py).
OUTBOX_COLLECTIONS = (SETTINGS, POLICIES, CONTENT, COURSE_PROGRESS, POLICY_ACKS)
# Where an item can be when its window ends: the expiry sweeper archives it from there.
EXPIRING = (Status.PUBLISHED, Status.PENDING_REVIEW)

INDEXES: list[IndexSpec] = [
    IndexSpec(CONTENT, [("org", ASCENDING), ("status", ASCENDING), ("_id", DESCENDING)]),
    IndexSpec(CONTENT, [("org", ASCENDING), ("author_advocate_id", ASCENDING), ("_id", DESCENDING)]),
    IndexSpec(CONTENT, [("status", ASCENDING), ("expires_at", ASCENDING)]),  # the expiry sweeper
    IndexSpec(CONTENT, [("org", ASCENDING), ("created_by", ASCENDING)]),  # erasure
    IndexSpec(POLICIES, [("org", ASCENDING), ("version", DESCENDING)], unique=True),
    IndexSpec(
        POLICY_ACKS, [("org", ASCENDING), ("advocate_id", ASCENDING), ("version", ASCENDING)], unique=True
    ),
    IndexSpec(COURSES, [("org", ASCENDING), ("_id", DESCENDING)]),
    IndexSpec(COURSE_PROGRESS, [("org", ASCENDING), ("advocate_id", ASCENDING)]),
    *(outbox_index(c) for c in OUTBOX_COLLECTIONS),
]


def new_id() -> str:
    """Ids that sort by creation time, so `_id` order is newest-first cursor order."""
    return str(ObjectId())


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


@dataclass(frozen=True)
class Policy:
    version: int
    title: str
    body: str
    published_by: str
    published_at: datetime


@dataclass(frozen=True)
class Course:
    id: str
    org: str
    title: str
    description: str | None
    modules: list[Module]
    created_by: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Progress:
    course_id: str
    advocate_id: str
    completed_module_ids: list[str]
    completed_at: datetime | None


# --- mapping ----------------------------------------------------------------------------------


def _content_doc(item: ContentItem) -> Document:
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
    }


def _content_item(doc: Document) -> ContentItem:
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
    )


def _either(*conditions: Document) -> Document:
    return {"$or": list(conditions)}


def _content_filter(org: str, query: ContentQuery) -> Document:
    clauses: list[Document] = [{"org": org}]
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
    return {"$and": clauses}


def expired_filter(status: Status, now: datetime) -> Document:
    """Items in `status` whose window has ended: one range of the (status, expires_at) index.
    A query per status rather than `$in`: MongoDB scans the index for both, but the local store
    (SecantusDB) plans `$in` next to a range as a collection scan."""
    return {"status": str(status), "expires_at": {"$lte": now}}


def _course(doc: Document) -> Course:
    return Course(
        id=doc["_id"],
        org=doc["org"],
        title=doc["title"],
        description=doc.get("description"),
        modules=[
            Module(m["id"], m["title"], m.get("body"), m.get("url"), m["minutes"]) for m in doc["modules"]
        ],
        created_by=doc["created_by"],
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
    )


def _policy(doc: Document) -> Policy:
    return Policy(doc["version"], doc["title"], doc["body"], doc["published_by"], doc["published_at"])


def _progress(doc: Document) -> Progress:
    return Progress(
        doc["course_id"],
        doc["advocate_id"],
        list(doc.get("completed_module_ids") or []),
        doc.get("completed_at"),
    )


class ContentStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db

    # --- content ---

    async def insert_content(self, item: ContentItem, outbox: list[Document]) -> None:
        await self.db[CONTENT].insert_one(with_outbox({**_content_doc(item), "version": 1}, outbox))

    async def get_content(self, org: str, content_id: str) -> tuple[ContentItem, int] | None:
        doc = await self.db[CONTENT].find_one({"_id": content_id, "org": org})
        return (_content_item(doc), doc["version"]) if doc else None

    async def save_content(self, item: ContentItem, expected_version: int, outbox: list[Document]) -> bool:
        """Write the item and queue its events if nobody changed it since `expected_version`."""
        doc = _content_doc(item)
        del doc["_id"]
        result = await self.db[CONTENT].update_one(
            {"_id": item.id, "org": item.org, "version": expected_version},
            queue({"$set": doc, "$inc": {"version": 1}}, outbox),
        )
        return result.modified_count == 1

    async def list_content(
        self, org: str, query: ContentQuery, *, limit: int, before_id: str | None
    ) -> list[ContentItem]:
        filter_ = _content_filter(org, query)
        if before_id is not None:
            filter_["$and"].append({"_id": {"$lt": before_id}})
        cursor = self.db[CONTENT].find(filter_).sort("_id", DESCENDING).limit(limit)
        return [_content_item(doc) async for doc in cursor]

    async def expired_content(self, now: datetime, *, limit: int) -> list[tuple[ContentItem, int]]:
        """Across organisations: items still published or waiting whose window has ended."""
        found: list[tuple[ContentItem, int]] = []
        for status in EXPIRING:
            if len(found) >= limit:
                break
            cursor = self.db[CONTENT].find(expired_filter(status, now)).limit(limit - len(found))
            found += [(_content_item(doc), doc["version"]) async for doc in cursor]
        return found

    async def count_share(self, org: str, content_id: str, event_id: str) -> None:
        """One more share of the item; the event id kept in the document makes this happen once."""
        await self.db[CONTENT].update_one(
            {"_id": content_id, "org": org, **applied_once_filter(event_id)},
            {"$inc": {"share_count": 1}, "$push": mark_applied(event_id)},
        )

    async def anonymise_author(self, org: str, advocate_id: str) -> None:
        await self.db[CONTENT].update_many(
            {"org": org, "author_advocate_id": advocate_id},
            {"$set": {"author_advocate_id": None, "author_erased": True}},
        )
        await self.db[CONTENT].update_many(
            {"org": org, "created_by": advocate_id}, {"$set": {"created_by": "erased"}}
        )

    # --- organisation settings ---

    async def get_settings(self, org: str) -> OrgSettings:
        doc = await self.db[SETTINGS].find_one({"_id": org})
        if doc is None:
            return OrgSettings()
        names = {f.name for f in dataclasses.fields(OrgSettings)}
        return OrgSettings(**{k: v for k, v in doc.items() if k in names})

    async def save_settings(
        self, org: str, settings: OrgSettings, updated_by: str, now: datetime, outbox: list[Document]
    ) -> None:
        fields = {**dataclasses.asdict(settings), "org": org, "updated_by": updated_by, "updated_at": now}
        await self.db[SETTINGS].update_one({"_id": org}, queue({"$set": fields}, outbox), upsert=True)

    # --- policy ---

    async def current_policy(self, org: str) -> Policy | None:
        doc = await self.db[POLICIES].find_one({"org": org}, sort=[("version", DESCENDING)])
        return _policy(doc) if doc else None

    async def insert_policy(self, org: str, policy: Policy, outbox: list[Document]) -> bool:
        """False when another admin took this version number first."""
        try:
            doc = {"_id": f"{org}:{policy.version}", "org": org, **dataclasses.asdict(policy)}
            await self.db[POLICIES].insert_one(with_outbox(doc, outbox))
        except DuplicateKeyError:
            return False
        return True

    async def list_policies(self, org: str, *, limit: int, below_version: int | None) -> list[Policy]:
        filter_: Document = {"org": org}
        if below_version is not None:
            filter_["version"] = {"$lt": below_version}
        cursor = self.db[POLICIES].find(filter_).sort("version", DESCENDING).limit(limit)
        return [_policy(doc) async for doc in cursor]

    async def acknowledged_at(self, org: str, advocate_id: str, version: int) -> datetime | None:
        doc = await self.db[POLICY_ACKS].find_one({"_id": f"{org}:{advocate_id}:{version}"})
        return doc["acknowledged_at"] if doc else None

    async def insert_acknowledgement(
        self, org: str, advocate_id: str, version: int, now: datetime, outbox: list[Document]
    ) -> bool:
        """False when this advocate had already acknowledged this version (nothing to emit)."""
        try:
            await self.db[POLICY_ACKS].insert_one(
                with_outbox(
                    {
                        "_id": f"{org}:{advocate_id}:{version}",
                        "org": org,
                        "advocate_id": advocate_id,
                        "version": version,
                        "acknowledged_at": now,
                    },
                    outbox,
                )
            )
        except DuplicateKeyError:
            return False
        return True

    # --- courses ---

    async def insert_course(self, course: Course) -> None:
        doc = {**dataclasses.asdict(course), "version": 1}
        doc["_id"] = doc.pop("id")
        await self.db[COURSES].insert_one(doc)

    async def get_course(self, org: str, course_id: str) -> Course | None:
        doc = await self.db[COURSES].find_one({"_id": course_id, "org": org})
        return _course(doc) if doc else None

    async def replace_course(self, course: Course) -> bool:
        doc = dataclasses.asdict(course)
        del doc["id"]
        result = await self.db[COURSES].update_one({"_id": course.id, "org": course.org}, {"$set": doc})
        return result.matched_count == 1

    async def list_courses(self, org: str, *, limit: int, before_id: str | None) -> list[Course]:
        filter_: Document = {"org": org}
        if before_id is not None:
            filter_["_id"] = {"$lt": before_id}
        cursor = self.db[COURSES].find(filter_).sort("_id", DESCENDING).limit(limit)
        return [_course(doc) async for doc in cursor]

    async def existing_course_ids(self, org: str, course_ids: list[str]) -> set[str]:
        cursor = self.db[COURSES].find({"org": org, "_id": {"$in": course_ids}}, {"_id": 1})
        return {doc["_id"] async for doc in cursor}

    @staticmethod
    def _progress_id(org: str, course_id: str, advocate_id: str) -> str:
        return f"{org}:{course_id}:{advocate_id}"

    async def complete_module(self, org: str, course_id: str, advocate_id: str, module_id: str) -> Progress:
        """Add the module to the progress; return the progress as this call's write left it.

        An update of the existing document, or else the insert of the first one; when another
        first completion inserted it a moment before, the update again. Each step is one atomic
        write whose result is this call's own. (Not one upsert returning the document: racing to
        create it, SecantusDB's answers are not each caller's own; see tests/store_contract.)
        """
        progress_id = self._progress_id(org, course_id, advocate_id)
        while True:
            doc = await self.db[COURSE_PROGRESS].find_one_and_update(
                {"_id": progress_id},
                {"$addToSet": {"completed_module_ids": module_id}},
                return_document=ReturnDocument.AFTER,
            )
            if doc is not None:
                return _progress(doc)
            first: Document = {
                "_id": progress_id,
                "org": org,
                "course_id": course_id,
                "advocate_id": advocate_id,
                "completed_module_ids": [module_id],
            }
            try:
                await self.db[COURSE_PROGRESS].insert_one(first)
            except DuplicateKeyError:
                continue
            return _progress(first)

    async def mark_course_completed(
        self, org: str, course_id: str, advocate_id: str, now: datetime, outbox: list[Document]
    ) -> bool:
        """Set the completion once; only the write that sets it queues the event."""
        result = await self.db[COURSE_PROGRESS].update_one(
            {"_id": self._progress_id(org, course_id, advocate_id), "completed_at": None},
            queue({"$set": {"completed_at": now}}, outbox),
        )
        return result.modified_count == 1

    async def get_progress(self, org: str, course_id: str, advocate_id: str) -> Progress | None:
        doc = await self.db[COURSE_PROGRESS].find_one({"_id": self._progress_id(org, course_id, advocate_id)})
        return _progress(doc) if doc else None

    async def list_progress(self, org: str, advocate_id: str) -> list[Progress]:
        cursor = self.db[COURSE_PROGRESS].find({"org": org, "advocate_id": advocate_id})
        return [_progress(doc) async for doc in cursor]

    # --- erasure ---

    async def erase_training(self, org: str, advocate_id: str) -> None:
        await self.db[COURSE_PROGRESS].delete_many({"org": org, "advocate_id": advocate_id})
        await self.db[POLICY_ACKS].delete_many({"org": org, "advocate_id": advocate_id})
