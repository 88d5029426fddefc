"""Advocates' audience attributes (`advocate_audiences`), one document per (org, advocate)."""

from __future__ import annotations

from collections.abc import Iterable

from pymongo.asynchronous.database import AsyncDatabase

from services.content.audience.domain import AdvocateAudience, AuthorName
from shared.documents import Documents
from shared.mongo import Document, IndexSpec, joined_id
from shared.tenancy import Tenants

AUDIENCES = "advocate_audiences"

INDEXES: list[IndexSpec] = [IndexSpec(AUDIENCES, [("org", 1), ("_id", 1)])]

DOCUMENTS = Documents(AdvocateAudience, id_field=None)


class AudienceStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tenants = Tenants(db)

    async def save(self, org: str, audience: AdvocateAudience) -> None:
        await self.tenants.of(org, AUDIENCES).update_one(
            {"_id": joined_id(org, audience.advocate_id)}, {"$set": DOCUMENTS.document(audience)}, upsert=True
        )

    async def get(self, org: str, advocate_id: str) -> AdvocateAudience | None:
        return await DOCUMENTS.one(self.tenants.of(org, AUDIENCES), {"_id": joined_id(org, advocate_id)})

    async def names(self, org: str, advocate_ids: Iterable[str]) -> dict[str, AuthorName]:
        """The names of those of these advocates who let colleagues see them."""
        ids = [joined_id(org, a) for a in set(advocate_ids)]
        if not ids:
            return {}
        found = self.tenants.of(org, AUDIENCES).find(
            {"_id": {"$in": ids}, "display_name": {"$ne": None}},
            {"advocate_id": 1, "display_name": 1, "avatar_url": 1},
        )
        return {d["advocate_id"]: AuthorName(d["display_name"], d.get("avatar_url")) async for d in found}

    async def erase(self, org: str, advocate_id: str) -> None:
        await self.tenants.of(org, AUDIENCES).delete_one({"_id": joined_id(org, advocate_id)})
