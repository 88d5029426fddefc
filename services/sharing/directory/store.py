"""The directory's collections; typed entities in and out.

- directory_users    one per (org, SCIM user): the resource as JSON and the columns filters,
                     uniqueness and ETags read; `pending_sync` until the advocate follows it
- directory_groups   one per (org, SCIM group): the resource and its members' ids

Every write of a resource is one single-document write, conditional on the version it read (so
a stale ETag, or a concurrent writer, changes nothing), and `userName` is unique per organisation
through an index (so a duplicate is refused whole).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from scim2_models import Group, PreconditionFailedException, UniquenessException

from services.sharing.directory import query
from services.sharing.directory.domain import DirectoryGroup, DirectoryUser, UserResource
from shared.documents import Documents
from shared.mongo import Document, IndexSpec, is_duplicate_key, pending_index
from shared.tenancy import Tenants

USERS = "directory_users"
GROUPS = "directory_groups"

PENDING: Document = {"pending_sync": True}

INDEXES: list[IndexSpec] = [
    IndexSpec(USERS, [("org", 1), ("user_name_key", 1)], unique=True),
    IndexSpec(USERS, [("org", 1), ("advocate_id", 1)], unique=True),
    IndexSpec(USERS, [("org", 1), ("external_id", 1)]),
    IndexSpec(USERS, [("org", 1), ("last_modified", 1)]),
    IndexSpec(USERS, [("org", 1), ("created", 1), ("_id", 1)]),
    pending_index(USERS, "pending_sync", PENDING, name="pending_sync"),
    IndexSpec(GROUPS, [("org", 1), ("display_name_key", 1)]),
    IndexSpec(GROUPS, [("org", 1), ("members", 1)]),
    IndexSpec(GROUPS, [("org", 1), ("created", 1), ("_id", 1)]),
]

USER_DOCUMENTS = Documents(DirectoryUser, id_field=None)
GROUP_DOCUMENTS = Documents(DirectoryGroup, id_field=None)


def _key(org: str, scim_id: str) -> str:
    return f"{org}:{scim_id}"


def _uniqueness(user: DirectoryUser) -> UniquenessException:
    return UniquenessException(
        detail=f"a user with userName {user.user_name!r} (or the same externalId) already exists"
    )


class DirectoryStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tenants = Tenants(db)

    # --- users ----------------------------------------------------------------------------------

    async def insert_user(self, org: str, user: DirectoryUser) -> None:
        doc = {**USER_DOCUMENTS.document(user), "_id": _key(org, user.scim_id), **PENDING}
        try:
            await self.tenants.of(org, USERS).insert_one(doc)
        except Exception as exc:
            if is_duplicate_key(exc):
                raise _uniqueness(user) from exc
            raise

    async def replace_user(self, org: str, user: DirectoryUser, read_version: int) -> None:
        """Write the new state if the stored one is still at `read_version`."""
        try:
            result = await self.tenants.of(org, USERS).update_one(
                {"_id": _key(org, user.scim_id), "version": read_version},
                {"$set": {**USER_DOCUMENTS.document(user), **PENDING}},
            )
        except Exception as exc:
            if is_duplicate_key(exc):
                raise _uniqueness(user) from exc
            raise
        if result.matched_count == 0:
            raise PreconditionFailedException(detail="the user changed meanwhile: read it again")

    async def user(self, org: str, scim_id: str) -> DirectoryUser | None:
        doc = await self.tenants.of(org, USERS).find_one({"_id": _key(org, scim_id)})
        return None if doc is None else USER_DOCUMENTS.entity(doc)

    async def touch_users(self, org: str, scim_ids: set[str], at: datetime) -> None:
        """These users one version on (their groups changed, and with them their representation),
        to be followed by their advocates; one write."""
        keys = [_key(org, scim_id) for scim_id in scim_ids]
        await self.tenants.of(org, USERS).update_many(
            {"_id": {"$in": keys}}, {"$inc": {"version": 1}, "$set": {"last_modified": at, **PENDING}}
        )

    async def mark_pending(self, org: str, scim_ids: set[str], at: datetime) -> None:
        """These users' advocates are about to change with a group write: the sweep follows them
        up should the write's process stop before it does (`at`: the sweep's grace starts)."""
        keys = [_key(org, scim_id) for scim_id in scim_ids]
        await self.tenants.of(org, USERS).update_many(
            {"_id": {"$in": keys}}, {"$set": {"last_modified": at, **PENDING}}
        )

    async def delete_user(self, org: str, user: DirectoryUser) -> bool:
        result = await self.tenants.of(org, USERS).delete_one(
            {"_id": _key(org, user.scim_id), "version": user.version}
        )
        return result.deleted_count == 1

    async def user_of_advocate(self, org: str, advocate_id: str) -> DirectoryUser | None:
        doc = await self.tenants.of(org, USERS).find_one({"advocate_id": advocate_id})
        return None if doc is None else USER_DOCUMENTS.entity(doc)

    async def erase_user(self, org: str, scim_id: str) -> int:
        return (await self.tenants.of(org, USERS).delete_many({"_id": _key(org, scim_id)})).deleted_count

    async def users(
        self, org: str, filter_text: str | None, start: int, count: int
    ) -> tuple[int, list[DirectoryUser]]:
        """Total matching, and the page from `start` (0-based) in creation order."""
        selected = query.to_query(filter_text, UserResource, query.USER_COLUMNS, query.CORE_USER)
        return await self._page(org, USERS, selected, start, count, USER_DOCUMENTS)

    async def mark_synced(self, org: str, user: DirectoryUser) -> None:
        """The advocate follows this version of the user (a newer one stays pending)."""
        await self.tenants.of(org, USERS).update_one(
            {"_id": _key(org, user.scim_id), "version": user.version}, {"$unset": {"pending_sync": ""}}
        )

    async def pending_sync(self, written_before: datetime, limit: int) -> list[tuple[str, DirectoryUser]]:
        """Across organisations: (org, user) whose advocate did not follow their last write (the
        process stopped between the two writes), written before `written_before`."""
        found = self.tenants.across(USERS, why="the sweep of every organisation's unsynced directory users")
        docs = await found.find({**PENDING, "last_modified": {"$lt": written_before}}).limit(limit).to_list()
        return [(d["org"], USER_DOCUMENTS.entity(d)) for d in docs]

    # --- groups ---------------------------------------------------------------------------------

    async def insert_group(self, org: str, group: DirectoryGroup) -> None:
        await self.tenants.of(org, GROUPS).insert_one(
            {**GROUP_DOCUMENTS.document(group), "_id": _key(org, group.scim_id)}
        )

    async def replace_group(self, org: str, group: DirectoryGroup, read_version: int) -> None:
        result = await self.tenants.of(org, GROUPS).update_one(
            {"_id": _key(org, group.scim_id), "version": read_version},
            {"$set": GROUP_DOCUMENTS.document(group)},
        )
        if result.matched_count == 0:
            raise PreconditionFailedException(detail="the group changed meanwhile: read it again")

    async def group(self, org: str, scim_id: str) -> DirectoryGroup | None:
        doc = await self.tenants.of(org, GROUPS).find_one({"_id": _key(org, scim_id)})
        return None if doc is None else GROUP_DOCUMENTS.entity(doc)

    async def delete_group(self, org: str, group: DirectoryGroup) -> bool:
        result = await self.tenants.of(org, GROUPS).delete_one(
            {"_id": _key(org, group.scim_id), "version": group.version}
        )
        return result.deleted_count == 1

    async def groups(
        self, org: str, filter_text: str | None, start: int, count: int
    ) -> tuple[int, list[DirectoryGroup]]:
        selected = query.to_query(filter_text, Group, query.GROUP_COLUMNS, query.CORE_GROUP)
        return await self._page(org, GROUPS, selected, start, count, GROUP_DOCUMENTS)

    async def groups_of(self, org: str, user_ids: list[str]) -> list[DirectoryGroup]:
        """The groups any of these users is a member of."""
        if not user_ids:
            return []
        found = self.tenants.of(org, GROUPS).find({"members": {"$in": user_ids}})
        return [GROUP_DOCUMENTS.entity(d) async for d in found]

    async def existing_users(self, org: str, scim_ids: list[str]) -> set[str]:
        if not scim_ids:
            return set()
        found = self.tenants.of(org, USERS).find(
            {"_id": {"$in": [_key(org, i) for i in scim_ids]}}, {"scim_id": 1}
        )
        return {d["scim_id"] async for d in found}

    # --- shared ---------------------------------------------------------------------------------

    async def _page(
        self, org: str, collection: str, selected: Document, start: int, count: int, documents: Documents[Any]
    ) -> tuple[int, list[Any]]:
        coll = self.tenants.of(org, collection)
        total = await coll.count_documents(selected)
        if count == 0 or start >= total:
            return total, []
        docs = await coll.find(selected).sort([("created", 1), ("_id", 1)]).skip(start).limit(count).to_list()
        return total, [documents.entity(d) for d in docs]
