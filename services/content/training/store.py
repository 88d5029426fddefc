"""Training in MongoDB: policy versions, acknowledgements, courses and each advocate's progress.

A policy version, an acknowledgement and a course completion are saved with their event in the
same document's outbox (shared/outbox.py). Every query goes through shared/tenancy.py.
"""

from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.content.training.domain import Course, Policy, Progress
from shared import idempotency
from shared.documents import Documents
from shared.migrations import drop_index
from shared.mongo import Document, IndexSpec, erase_person, made_with_key_filter
from shared.outbox import adopt_serialised_outbox, outbox_index, queue, with_outbox
from shared.tenancy import Tenants

POLICIES = "policies"
POLICY_ACKS = "policy_acks"
COURSES = "courses"
COURSE_PROGRESS = "course_progress"

OUTBOX_COLLECTIONS = (POLICIES, COURSE_PROGRESS, POLICY_ACKS)

# The outbox before shared/outbox.py: its pending events adopted, then its index dropped.
MIGRATIONS = [
    *(adopt_serialised_outbox(c) for c in OUTBOX_COLLECTIONS),
    *(drop_index(c, "outbox_pending_1") for c in OUTBOX_COLLECTIONS),
]

INDEXES: list[IndexSpec] = [
    IndexSpec(POLICIES, [("org", ASCENDING), ("version", DESCENDING)], unique=True),
    IndexSpec(
        POLICY_ACKS, [("org", ASCENDING), ("advocate_id", ASCENDING), ("version", ASCENDING)], unique=True
    ),
    IndexSpec(COURSES, [("org", ASCENDING), ("_id", DESCENDING)]),
    IndexSpec(COURSE_PROGRESS, [("org", ASCENDING), ("advocate_id", ASCENDING)]),
    # A replaced course's progresses not yet completed (a removed module may complete them).
    IndexSpec(COURSE_PROGRESS, [("org", ASCENDING), ("course_id", ASCENDING), ("completed_at", ASCENDING)]),
    *(outbox_index(c) for c in OUTBOX_COLLECTIONS),
]


COURSE_DOCUMENTS = Documents(Course)
# A policy's `_id` and a progress's are the store's own keys (the org joined with its fields).
POLICY_DOCUMENTS = Documents(Policy, id_field=None)
PROGRESS_DOCUMENTS = Documents(Progress, id_field=None, older={"completed_module_ids": []})


def _progress_id(org: str, course_id: str, advocate_id: str) -> str:
    return f"{org}:{course_id}:{advocate_id}"


class TrainingStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._tenants = Tenants(db)

    # --- policy ---

    async def current_policy(self, org: str) -> Policy | None:
        doc = await self._tenants.of(org, POLICIES).find_one({}, sort=[("version", DESCENDING)])
        return POLICY_DOCUMENTS.entity(doc) if doc else None

    async def insert_policy(self, org: str, policy: Policy, outbox: list[Document]) -> bool:
        """False when another admin took this version number first."""
        try:
            doc = {"_id": f"{org}:{policy.version}", **POLICY_DOCUMENTS.document(policy)}
            await self._tenants.of(org, POLICIES).insert_one(with_outbox(doc, outbox))
        except DuplicateKeyError:
            return False
        return True

    async def policy_made_with_key(
        self, org: str, published_by: str, key: str, now: datetime
    ) -> Policy | None:
        """The version `published_by` published by a request with this Idempotency-Key, in the
        key's lifetime. (An organisation has few versions: the org's part of the index narrows
        this enough.)"""
        keyed = {"published_by": published_by, **made_with_key_filter(key, now, made_at="published_at")}
        return await POLICY_DOCUMENTS.one(self._tenants.of(org, POLICIES), keyed)

    async def list_policies(self, org: str, *, limit: int, below_version: int | None) -> list[Policy]:
        filter_: Document = {} if below_version is None else {"version": {"$lt": below_version}}
        cursor = self._tenants.of(org, POLICIES).find(filter_).sort("version", DESCENDING).limit(limit)
        return [POLICY_DOCUMENTS.entity(doc) async for doc in cursor]

    async def acknowledged_at(self, org: str, advocate_id: str, version: int) -> datetime | None:
        doc = await self._tenants.of(org, POLICY_ACKS).find_one({"_id": f"{org}:{advocate_id}:{version}"})
        return doc["acknowledged_at"] if doc else None

    async def insert_acknowledgement(
        self, org: str, advocate_id: str, version: int, now: datetime, outbox: list[Document]
    ) -> bool:
        """False when this advocate had already acknowledged this version (nothing to emit)."""
        acknowledgement = {
            "_id": f"{org}:{advocate_id}:{version}",
            "advocate_id": advocate_id,
            "version": version,
            "acknowledged_at": now,
        }
        try:
            await self._tenants.of(org, POLICY_ACKS).insert_one(with_outbox(acknowledgement, outbox))
        except DuplicateKeyError:
            return False
        return True

    # --- courses ---

    async def insert_course(self, course: Course) -> None:
        await self._tenants.of(course.org, COURSES).insert_one(COURSE_DOCUMENTS.document(course))

    async def course_made_with_key(self, org: str, created_by: str, key: str, now: datetime) -> Course | None:
        """The course `created_by` made by a request with this Idempotency-Key, in the key's
        lifetime. (An organisation has few courses: the org's part of the index narrows this
        enough.)"""
        keyed = {"created_by": created_by, **made_with_key_filter(key, now)}
        return await COURSE_DOCUMENTS.one(self._tenants.of(org, COURSES), keyed)

    async def get_course(self, org: str, course_id: str) -> Course | None:
        return await COURSE_DOCUMENTS.one(self._tenants.of(org, COURSES), {"_id": course_id})

    async def replace_course(self, course: Course, read_version: int | None) -> int | None:
        """Only what a replacement changes: the course was read before this write, and its
        creator and their request's key may have been erased since (erase_training). Written
        only while the course is still at `read_version` (None: at any); its version now, None
        when nothing was written."""
        replaced = {
            "title": course.title,
            "description": course.description,
            "modules": COURSE_DOCUMENTS.document(course)["modules"],
            "updated_at": course.updated_at,
        }
        at_version = {} if read_version is None else {"version": read_version}
        written = await self._tenants.of(course.org, COURSES).find_one_and_update(
            {"_id": course.id, **at_version},
            {"$set": replaced, "$inc": {"version": 1}},
            projection={"version": 1},
            return_document=ReturnDocument.AFTER,
        )
        return None if written is None else int(written["version"])

    async def list_courses(self, org: str, *, limit: int, before_id: str | None) -> list[Course]:
        filter_: Document = {} if before_id is None else {"_id": {"$lt": before_id}}
        cursor = self._tenants.of(org, COURSES).find(filter_).sort("_id", DESCENDING).limit(limit)
        return [COURSE_DOCUMENTS.entity(doc) async for doc in cursor]

    async def existing_course_ids(self, org: str, course_ids: list[str]) -> set[str]:
        cursor = self._tenants.of(org, COURSES).find({"_id": {"$in": course_ids}}, {"_id": 1})
        return {doc["_id"] async for doc in cursor}

    # --- progress ---

    async def complete_module(self, org: str, course_id: str, advocate_id: str, module_id: str) -> Progress:
        """Add the module to the progress; return the progress as this call's write left it.

        An update of the existing document, or else the insert of the first one; when another
        first completion inserted it a moment before, the update again. Each step is one atomic
        write whose result is this call's own. (Not one upsert returning the document: racing to
        create it, SecantusDB's answers are not each caller's own; see tests/store_contract.)
        """
        progresses = self._tenants.of(org, COURSE_PROGRESS)
        progress_id = _progress_id(org, course_id, advocate_id)
        while True:
            doc = await progresses.find_one_and_update(
                {"_id": progress_id},
                {"$addToSet": {"completed_module_ids": module_id}},
                return_document=ReturnDocument.AFTER,
            )
            if doc is not None:
                return PROGRESS_DOCUMENTS.entity(doc)
            # By hand: the first progress has no `completed_at` key until the course is completed.
            first: Document = {
                "_id": progress_id,
                "course_id": course_id,
                "advocate_id": advocate_id,
                "completed_module_ids": [module_id],
            }
            try:
                await progresses.insert_one(first)
            except DuplicateKeyError:
                continue
            return PROGRESS_DOCUMENTS.entity(first)

    async def mark_course_completed(
        self, org: str, course_id: str, advocate_id: str, now: datetime, outbox: list[Document]
    ) -> bool:
        """Set the completion once; only the write that sets it queues the event."""
        result = await self._tenants.of(org, COURSE_PROGRESS).update_one(
            {"_id": _progress_id(org, course_id, advocate_id), "completed_at": None},
            queue({"$set": {"completed_at": now}}, outbox),
        )
        return result.modified_count == 1

    async def uncompleted_progress(self, org: str, course_id: str) -> list[Progress]:
        """The course's progresses whose completion is not set."""
        progresses = self._tenants.of(org, COURSE_PROGRESS)
        cursor = progresses.find({"course_id": course_id, "completed_at": None})
        return [PROGRESS_DOCUMENTS.entity(doc) async for doc in cursor]

    async def get_progress(self, org: str, course_id: str, advocate_id: str) -> Progress | None:
        progresses = self._tenants.of(org, COURSE_PROGRESS)
        return await PROGRESS_DOCUMENTS.one(progresses, {"_id": _progress_id(org, course_id, advocate_id)})

    # --- erasure ---

    async def erase_training(self, org: str, advocate_id: str) -> None:
        await self._tenants.of(org, COURSE_PROGRESS).delete_many({"advocate_id": advocate_id})
        await self._tenants.of(org, POLICY_ACKS).delete_many({"advocate_id": advocate_id})
        # Stored answers of the advocate's creates (submissions, completions) name them.
        await idempotency.forget_answers_naming(self._tenants.db, org, advocate_id)
        # The courses and policies they made as staff stay the organisation's, naming nobody (an
        # organisation has few of either: the org's part of their indexes narrows these enough).
        # The key of the request that made one is the client's text, which may name them.
        courses, policies = self._tenants.of(org, COURSES), self._tenants.of(org, POLICIES)
        await erase_person(courses, "created_by", advocate_id, also_clear=("request_key",))
        await erase_person(policies, "published_by", advocate_id, also_clear=("request_key",))
