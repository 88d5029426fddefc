"""The only MongoDB code of the API keys."""

from __future__ import annotations

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from services.metrics.api_keys import domain
from services.metrics.api_keys.domain import ApiKey
from services.metrics.paging import page_by_id
from shared.api_keys import DEFAULT_SCOPES
from shared.documents import Documents
from shared.events.envelope import AnyEvent
from shared.migrations import Migration
from shared.mongo import Document, IndexSpec, erase_person
from shared.outbox import outbox_index, pending, queue, with_outbox
from shared.tenancy import Tenants

API_KEYS = "api_keys"
OUTBOX_COLLECTIONS = (API_KEYS,)

INDEXES: list[IndexSpec] = [
    IndexSpec(API_KEYS, [("org", ASCENDING)]),
    *(outbox_index(c) for c in OUTBOX_COLLECTIONS),
]

# Keys made before scopes (or their maker) were kept may do what every key could then.
DOCUMENTS = Documents(ApiKey, id_field="key_id", older={"scopes": DEFAULT_SCOPES, "created_by": ""})


# Set on every key whose events the other services have been sent (all keys since 2026-12).
ANNOUNCED = "announced"


async def _announce_existing_keys(db: AsyncDatabase[Document]) -> int:
    """Keys made before the other services learnt of keys from events: tell them now."""
    keys = Tenants(db).across(API_KEYS, why="a one-off upgrade of every organisation's keys")
    announced = 0
    async for doc in keys.find({ANNOUNCED: {"$exists": False}}):
        key = DOCUMENTS.entity(doc)
        events: list[AnyEvent] = [domain.issued(key)]
        if key.revoked_at is not None:
            events.append(domain.revoked(key))
        update = queue({"$set": {ANNOUNCED: True}}, [pending(e, trace={}) for e in events])
        result = await keys.update_one({"_id": key.key_id, ANNOUNCED: {"$exists": False}}, update)
        announced += result.modified_count
    return announced


MIGRATIONS = [Migration("2026-12-api-keys-announced-to-every-service", _announce_existing_keys)]


class ApiKeyStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tenants = Tenants(db)

    async def insert(self, key: ApiKey, event: AnyEvent) -> None:
        await self.tenants.of(key.org, API_KEYS).insert_one(
            with_outbox({**DOCUMENTS.document(key), ANNOUNCED: True}, [pending(event)])
        )

    async def by_id(self, key_id: str) -> ApiKey | None:
        keys = self.tenants.across(API_KEYS, why="a caller's API key names its organisation")
        return await DOCUMENTS.one(keys, {"_id": key_id})

    async def of(self, org: str, key_id: str) -> ApiKey | None:
        return await DOCUMENTS.one(self.tenants.of(org, API_KEYS), {"_id": key_id})

    async def page(self, org: str, cursor: str | None, limit: int) -> tuple[list[ApiKey], str | None]:
        return await page_by_id(self.tenants.of(org, API_KEYS), DOCUMENTS, cursor, limit)

    async def revoke(self, key: ApiKey, event: AnyEvent) -> bool:
        """Save `key` revoked, with its event, if nobody revoked it meanwhile."""
        update = queue({"$set": {"revoked_at": key.revoked_at}}, [pending(event)])
        result = await self.tenants.of(key.org, API_KEYS).update_one(
            {"_id": key.key_id, "revoked_at": None}, update
        )
        return result.modified_count == 1

    async def erase_creator(self, org: str, person: str) -> None:
        """The keys `person` (erased) made work on, naming nobody (an organisation has few keys)."""
        await erase_person(self.tenants.of(org, API_KEYS), "created_by", person)
