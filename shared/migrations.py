"""One-off upgrades of a service's stored data, run at start and recorded so they run once.

A service lists its `Migration`s (oldest first) in `create_service_app(migrations=...)`. At start,
after the indexes are ensured and before anything reads or writes, each one not yet recorded in
the service's `migrations` collection runs, then is recorded. Replicas starting together may both
run one, so every migration must be idempotent (an update that matches only what is still in the
old shape; an index drop that tolerates a missing index). Never edit a migration that has
shipped: add another.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure

from shared.clock import utc_now
from shared.mongo import Document
from shared.tenancy import Tenants

log = logging.getLogger(__name__)

MIGRATIONS = "migrations"
# The old shape of documents written before every query named the organisation.
NO_ORG: Document = {"org": {"$exists": False}}
INDEX_NOT_FOUND = 27
NAMESPACE_NOT_FOUND = 26


@dataclass(frozen=True)
class Migration:
    name: str  # stable and unique within the service, e.g. "2026-12-drop-ledger-unpublished"
    run: Callable[[AsyncDatabase[Document]], Awaitable[Any]]


async def migrate(db: AsyncDatabase[Document], migrations: Sequence[Migration]) -> list[str]:
    """Run the migrations not yet recorded, in order; the names of those run."""
    recorded = Tenants(db).across(MIGRATIONS, why="migrations belong to the service, not to an org")
    done = {doc["_id"] async for doc in recorded.find({}, {"_id": 1})}
    ran: list[str] = []
    for migration in migrations:
        if migration.name in done:
            continue
        result = await migration.run(db)
        log.info("migration %s done: %s", migration.name, result)
        with contextlib.suppress(DuplicateKeyError):  # another replica ran it too (idempotent)
            await db[MIGRATIONS].insert_one({"_id": migration.name, "at": utc_now(), "result": str(result)})
        ran.append(migration.name)
    return ran


def drop_index(collection: str, name: str) -> Migration:
    """Drop an index the code no longer declares (it costs every write)."""

    async def run(db: AsyncDatabase[Document]) -> str:
        if name not in {index["name"] async for index in await db[collection].list_indexes()}:
            return "absent"
        try:
            await db[collection].drop_index(name)
        except OperationFailure as exc:
            if exc.code not in (INDEX_NOT_FOUND, NAMESPACE_NOT_FOUND):
                raise
            return "absent"  # another replica dropped it meanwhile
        return "dropped"

    return Migration(f"drop-index-{collection}-{name}", run)


def rewrite(name: str, collection: str, old_shape: Document, into_shape: list[Document]) -> Migration:
    """Rewrite every document of `collection` matching `old_shape` with the update pipeline
    `into_shape`, which must make it stop matching `old_shape` (so a second run changes nothing)."""

    async def run(db: AsyncDatabase[Document]) -> int:
        documents = Tenants(db).across(collection, why=f"migration {name} rewrites every org's documents")
        result = await documents.update_many(old_shape, into_shape)
        return int(result.modified_count)

    return Migration(name, run)
