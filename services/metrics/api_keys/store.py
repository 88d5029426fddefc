"""The only MongoDB code of the API keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from services.metrics.paging import page_by_id
from shared.documents import Documents
from shared.mongo import Document, IndexSpec
from shared.tenancy import Tenants

API_KEYS = "api_keys"
# What a metrics API key may be allowed to do.
SCOPES = ("conversions:write", "surveys:respond")

INDEXES: list[IndexSpec] = [IndexSpec(API_KEYS, [("org", ASCENDING)])]


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    org: str
    name: str
    secret_hash: str  # never the key itself
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    scopes: tuple[str, ...] = ()
    expires_at: datetime | None = None


# Keys made before scopes (or their maker) were kept may do what every key could then.
DOCUMENTS = Documents(ApiKey, id_field="key_id", older={"scopes": SCOPES, "created_by": ""})


class ApiKeyStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tenants = Tenants(db)

    async def insert(self, key: ApiKey) -> None:
        await self.tenants.of(key.org, API_KEYS).insert_one(DOCUMENTS.document(key))

    async def by_id(self, key_id: str) -> ApiKey | None:
        keys = self.tenants.across(API_KEYS, why="a caller's API key names its organisation")
        doc = await keys.find_one({"_id": key_id})
        return None if doc is None else DOCUMENTS.entity(doc)

    async def page(self, org: str, cursor: str | None, limit: int) -> tuple[list[ApiKey], str | None]:
        docs, next_cursor = await page_by_id(self.tenants.of(org, API_KEYS), cursor, limit)
        return [DOCUMENTS.entity(d) for d in docs], next_cursor

    async def revoke(self, org: str, key_id: str, at: datetime) -> ApiKey | None:
        doc = await self.tenants.of(org, API_KEYS).find_one_and_update(
            {"_id": key_id}, {"$set": {"revoked_at": at}}, return_document=ReturnDocument.AFTER
        )
        return None if doc is None else DOCUMENTS.entity(doc)
