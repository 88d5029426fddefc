"""The only MongoDB code of the API keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from services.metrics.paging import page_by_id
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


def _doc(key: ApiKey) -> Document:
    return {
        "_id": key.key_id,
        "org": key.org,
        "name": key.name,
        "secret_hash": key.secret_hash,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
        "created_by": key.created_by,
        "scopes": list(key.scopes),
        "expires_at": key.expires_at,
    }


def _key(doc: Document) -> ApiKey:
    return ApiKey(
        key_id=doc["_id"],
        org=doc["org"],
        name=doc["name"],
        secret_hash=doc["secret_hash"],
        created_at=doc["created_at"],
        created_by=doc.get("created_by", ""),
        revoked_at=doc.get("revoked_at"),
        # Keys made before scopes existed may do what every key could then.
        scopes=tuple(doc["scopes"]) if "scopes" in doc else SCOPES,
        expires_at=doc.get("expires_at"),
    )


class ApiKeyStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tenants = Tenants(db)

    async def insert(self, key: ApiKey) -> None:
        await self.tenants.of(key.org, API_KEYS).insert_one(_doc(key))

    async def by_id(self, key_id: str) -> ApiKey | None:
        keys = self.tenants.across(API_KEYS, why="a caller's API key names its organisation")
        doc = await keys.find_one({"_id": key_id})
        return None if doc is None else _key(doc)

    async def page(self, org: str, cursor: str | None, limit: int) -> tuple[list[ApiKey], str | None]:
        docs, next_cursor = await page_by_id(self.tenants.of(org, API_KEYS), cursor, limit)
        return [_key(d) for d in docs], next_cursor

    async def revoke(self, org: str, key_id: str, at: datetime) -> ApiKey | None:
        doc = await self.tenants.of(org, API_KEYS).find_one_and_update(
            {"_id": key_id}, {"$set": {"revoked_at": at}}, return_document=ReturnDocument.AFTER
        )
        return None if doc is None else _key(doc)
