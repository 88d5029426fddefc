"""Advocates' audience attributes (`advocate_audiences`), one document per (org, advocate)."""

from __future__ import annotations

from collections.abc import Iterable

from pymongo.asynchronous.database import AsyncDatabase

from services.content.audience.domain import AdvocateAudience
from shared.documents import Documents
from shared.mongo import Document, IndexSpec, joined_id
from shared.names import Name, visible_names
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

    async def names(self, org: str, advocate_ids: Iterable[str]) -> dict[str, Name]:
        return await visible_names(self.tenants.of(org, AUDIENCES), advocate_ids)

    async def erase(self, org: str, advocate_id: str) -> None:
        await self.tenants.of(org, AUDIENCES).delete_one({"_id": joined_id(org, advocate_id)})
