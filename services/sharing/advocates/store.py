"""Advocates' collections; typed entities in and out.

- advocates   one per (org, advocate): profile, consents, networks; carries its events' outbox
- training    one per (org, advocate): courses completed, newest policy acknowledged
- erased_advocates  one per (org, erased advocate), by a hash of their id: when they were
              erased, so that a training event older than that does not bring their record back
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.sharing.advocates.domain import Advocate, Colleague, DirectoryProfile, Profile, TrainingView
from shared.documents import Documents
from shared.mongo import Document, IndexSpec, pending_index
from shared.outbox import outbox_index, queue, with_outbox
from shared.tenancy import Tenants

ADVOCATES = "advocates"
TRAINING = "training"
ERASED_ADVOCATES = "erased_advocates"

OUTBOX_COLLECTIONS = (ADVOCATES,)

UNTRACKED: Document = {"consents.tracking": False}

INDEXES: list[IndexSpec] = [
    IndexSpec(ADVOCATES, [("org", 1), ("_id", 1)]),
    # The colleague directory: a name prefix is a range on the lower-cased name of those listed.
    IndexSpec(ADVOCATES, [("org", 1), ("search_name", 1), ("_id", 1)], name="colleagues"),
    # The redirect's periodic read of who withdrew tracking consent.
    pending_index(ADVOCATES, "consents.tracking", UNTRACKED, name="untracked"),
    *(outbox_index(c) for c in OUTBOX_COLLECTIONS),
    # An erasure's marker expires once no event can name the advocate (shared/vault.py).
    IndexSpec(ERASED_ADVOCATES, [("forget_at", 1)], options={"expireAfterSeconds": 0}),
]


def advocate_key(org: str, advocate_id: str) -> str:
    return f"{org}:{advocate_id}"


def _erased_key(org: str, advocate_id: str) -> str:
    # A hash: the marker outlives the erasure (until no event can name them) and names nobody.
    return advocate_key(org, hashlib.sha256(f"erased|{advocate_id}".encode()).hexdigest()[:32])


# A profile is kept in its advocate's document, beside the advocate's own fields.
PROFILE_DOCUMENTS = Documents(Profile, id_field=None, older={"display_name": ""})
# What the directory says of a provisioned advocate, kept under `directory`.
DIRECTORY_DOCUMENTS = Documents(DirectoryProfile, id_field=None)


def _listed(update: Document, search_name: str | None) -> Document:
    """The update, also listing the advocate in the colleague directory as `search_name`, or
    taking them off it (None)."""
    if search_name is None:
        return {**update, "$unset": {"search_name": ""}}
    return {**update, "$set": {**update.get("$set", {}), "search_name": search_name}}


def _advocate(doc: Document) -> Advocate:
    """By hand: the document flattens the profile's fields into its own, which Documents does not."""
    return Advocate(
        advocate_id=doc["advocate_id"],
        profile=PROFILE_DOCUMENTS.entity(doc),
        enrolled_at=doc["enrolled_at"],
        updated_at=doc["updated_at"],
        directory=None if doc.get("directory") is None else DIRECTORY_DOCUMENTS.entity(doc["directory"]),
        version=doc.get("version", 0),
    )


class AdvocatesStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tenants = Tenants(db)

    async def get(self, org: str, advocate_id: str) -> Advocate | None:
        doc = await self.tenants.of(org, ADVOCATES).find_one({"_id": advocate_key(org, advocate_id)})
        return None if doc is None else _advocate(doc)

    async def save(
        self,
        org: str,
        advocate_id: str,
        profile: Profile,
        now: datetime,
        outbox: list[Document],
        directory: DirectoryProfile | None = None,
        *,
        search_name: str | None = None,
        read_version: int | None,
    ) -> bool:
        """Save the profile (and what the directory says, when given) and queue its event, in one
        write, if the document is still at `read_version` (None: there was none, a first
        enrolment). False when it is not: changed or erased since, or enrolled meanwhile.
        `search_name` lists them in the colleague directory (None: not listed)."""
        advocates = self.tenants.of(org, ADVOCATES)
        key = advocate_key(org, advocate_id)
        kept: Document = {} if directory is None else {"directory": DIRECTORY_DOCUMENTS.document(directory)}
        fields = {
            **PROFILE_DOCUMENTS.document(profile),
            **kept,
            "advocate_id": advocate_id,
            "updated_at": now,
        }
        if read_version is None:
            # An insert, never an upsert: a write read from a document erasure deleted since
            # must not bring it back.
            listed = {} if search_name is None else {"search_name": search_name}
            doc = {"_id": key, **fields, **listed, "enrolled_at": now, "version": 1}
            try:
                await advocates.insert_one(with_outbox(doc, outbox))
            except DuplicateKeyError:
                return False
            return True
        result = await advocates.update_one(
            # Documents written before versions were kept have none: version 0 is its absence.
            {"_id": key, "version": read_version or None},
            queue(_listed({"$set": fields, "$inc": {"version": 1}}, search_name), outbox),
        )
        return result.matched_count == 1

    async def following_default(
        self, org: str, after: str | None, limit: int
    ) -> tuple[list[Advocate], str | None]:
        """Advocates whose name visibility is the organisation's default (no choice of their own),
        in key order after `after`, and the key to go on from."""
        query: Document = {"name_visible": None}
        if after is not None:
            query["_id"] = {"$gt": after}
        docs = await self.tenants.of(org, ADVOCATES).find(query).sort("_id", 1).limit(limit + 1).to_list()
        more = len(docs) > limit
        docs = docs[:limit]
        return [_advocate(d) for d in docs], docs[-1]["_id"] if more else None

    async def announce(
        self,
        org: str,
        advocate_id: str,
        search_name: str | None,
        now: datetime,
        outbox: list[Document],
        *,
        read_version: int,
    ) -> bool:
        """List them as `search_name` says and queue their re-announced profile, in one write, if
        the document is still at `read_version`. False when not: changed or erased since, so
        what was read is no longer theirs to announce."""
        result = await self.tenants.of(org, ADVOCATES).update_one(
            {"_id": advocate_key(org, advocate_id), "version": read_version or None},
            queue(_listed({"$set": {"updated_at": now}, "$inc": {"version": 1}}, search_name), outbox),
        )
        return result.matched_count == 1

    async def colleagues(
        self, org: str, prefix: str, after: tuple[str, str] | None, limit: int
    ) -> tuple[list[Colleague], tuple[str, str] | None]:
        """Listed advocates whose lower-cased name starts with `prefix`, in name order, and the
        (name, key) to go on from (None at the end)."""
        # Only strings compare with strings: unlisted advocates (no search_name) never match.
        named: Document = {"search_name": {"$gte": prefix, "$lt": prefix + "\U0010ffff"}}
        query: Document = named
        if after is not None:
            name, key = after
            query = {
                "$and": [
                    named,
                    {"$or": [{"search_name": {"$gt": name}}, {"search_name": name, "_id": {"$gt": key}}]},
                ]
            }
        docs = await (
            self.tenants.of(org, ADVOCATES)
            .find(query, {"advocate_id": 1, "display_name": 1, "avatar_url": 1, "team": 1, "search_name": 1})
            .sort([("search_name", 1), ("_id", 1)])
            .limit(limit + 1)
            .to_list()
        )
        more = len(docs) > limit
        docs = docs[:limit]
        found = [
            Colleague(d["advocate_id"], d["display_name"], d.get("avatar_url"), d.get("team")) for d in docs
        ]
        return found, (docs[-1]["search_name"], docs[-1]["_id"]) if more else None

    async def page(self, org: str, after: str | None, limit: int) -> tuple[list[Advocate], str | None]:
        """Up to `limit` advocates in key order after `after`, and the key to go on from (None at
        the end)."""
        query: Document = {} if after is None else {"_id": {"$gt": after}}
        docs = await self.tenants.of(org, ADVOCATES).find(query).sort("_id", 1).limit(limit + 1).to_list()
        more = len(docs) > limit
        docs = docs[:limit]
        return [_advocate(d) for d in docs], docs[-1]["_id"] if more else None

    async def untracked(self) -> set[tuple[str, str]]:
        """(org, advocate) of every advocate who has withdrawn tracking consent (a partial index
        holds just those, so reading them all costs little however many advocates there are)."""
        profiles = self.tenants.across(ADVOCATES, why="the redirect's view of every organisation's consents")
        found = profiles.find(UNTRACKED, {"org": 1, "advocate_id": 1})
        return {(d["org"], d["advocate_id"]) async for d in found}

    async def record_course(self, org: str, advocate_id: str, course_id: str, at: datetime) -> None:
        await self._record(org, advocate_id, at, {"$addToSet": {"completed_course_ids": course_id}})

    async def record_policy_acknowledgement(
        self, org: str, advocate_id: str, version: int, at: datetime
    ) -> None:
        await self._record(org, advocate_id, at, {"$max": {"acknowledged_policy_version": version}})

    async def _record(self, org: str, advocate_id: str, at: datetime, update: Document) -> None:
        """Apply a training event of time `at`, unless the advocate was erased since: an older
        event read after the erasure (another topic, no order between them) is theirs no more."""
        if await self._erased_since(org, advocate_id, at):
            return
        training = self.tenants.of(org, TRAINING)
        key = {"_id": advocate_key(org, advocate_id)}
        await training.update_one(key, {**update, "$set": {"advocate_id": advocate_id}}, upsert=True)
        # An erasure that ran between the check and the write deleted before this wrote; its
        # marker, written before it deleted, is there now.
        if await self._erased_since(org, advocate_id, at):
            await training.delete_one(key)

    async def _erased_since(self, org: str, advocate_id: str, at: datetime) -> bool:
        marker = {"_id": _erased_key(org, advocate_id), "erased_at": {"$gte": at}}
        return await self.tenants.of(org, ERASED_ADVOCATES).find_one(marker) is not None

    async def training(self, org: str, advocate_id: str) -> TrainingView:
        doc = await self.tenants.of(org, TRAINING).find_one({"_id": advocate_key(org, advocate_id)})
        if doc is None:
            return TrainingView()
        return TrainingView(
            completed_course_ids=frozenset(doc.get("completed_course_ids") or ()),
            acknowledged_policy_version=doc.get("acknowledged_policy_version"),
        )

    async def erase(self, org: str, advocate_id: str, at: datetime, forget_at: datetime) -> dict[str, int]:
        """Delete the advocate's profile and training record; counts per collection. The erasure
        at `at` is remembered first, until `forget_at`, so older training events read later are
        left out."""
        await self.tenants.of(org, ERASED_ADVOCATES).update_one(
            {"_id": _erased_key(org, advocate_id)},
            {"$max": {"erased_at": at, "forget_at": forget_at}},
            upsert=True,
        )
        key = {"_id": advocate_key(org, advocate_id)}
        return {
            ADVOCATES: (await self.tenants.of(org, ADVOCATES).delete_many(key)).deleted_count,
            TRAINING: (await self.tenants.of(org, TRAINING).delete_many(key)).deleted_count,
        }
