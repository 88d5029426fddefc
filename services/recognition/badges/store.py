"""Badges: the organisations' own definitions, the awards (each carrying its chorus.badge.awarded
in its outbox), and what the thought-leader badge counts: who wrote which content, and which
colleagues shared it."""

from __future__ import annotations

import contextlib
from datetime import datetime

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.recognition.badges.domain import Award, BadgeDefinition
from shared.fields import AS_STORED
from shared.migrations import drop_index
from shared.mongo import Document, IndexSpec, joined_id
from shared.outbox import outbox_index, with_outbox
from shared.tenancy import Tenants

BADGE_DEFS = "badge_definitions"
AWARDS = "awards"
CONTENT_AUTHORS = "content_authors"
COLLEAGUE_SHARES = "colleague_shares"

# The awards' list of unpublished ones before shared/outbox.py, which nothing reads any more.
MIGRATIONS = [drop_index(AWARDS, "awards_unpublished")]

INDEXES: list[IndexSpec] = [
    IndexSpec(AWARDS, [("org", ASCENDING), ("advocate_id", ASCENDING), ("awarded_at", DESCENDING)]),
    IndexSpec(BADGE_DEFS, [("org", ASCENDING), ("badge_id", ASCENDING)], unique=True),
    IndexSpec(COLLEAGUE_SHARES, [("org", ASCENDING), ("author", ASCENDING)]),
    # An author's content, for their erasure.
    IndexSpec(CONTENT_AUTHORS, [("org", ASCENDING), ("author", ASCENDING)]),
    # Awards carry their chorus.badge.awarded in an outbox (shared/outbox.py).
    outbox_index(AWARDS),
]


def _award(doc: Document) -> Award:
    """By hand: the definition is stored as JSON, read back in the AS_STORED validation context."""
    return Award(
        doc["_id"],
        doc["advocate_id"],
        doc["badge_id"],
        doc["name"],
        BadgeDefinition.model_validate_json(doc["definition_json"], context=AS_STORED),
        doc["awarded_at"],
    )


class BadgeStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tenants = Tenants(db)

    async def insert_definition(self, org: str, definition: BadgeDefinition, at: datetime) -> bool:
        """False if the organisation has a badge of that id already."""
        try:
            await self.tenants.of(org, BADGE_DEFS).insert_one(
                {
                    "_id": joined_id(org, definition.badge_id),
                    "badge_id": definition.badge_id,
                    "definition_json": definition.model_dump_json(),
                    "created_at": at,
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def definitions(self, org: str) -> list[BadgeDefinition]:
        cursor = self.tenants.of(org, BADGE_DEFS).find().sort("created_at", ASCENDING)
        return [
            BadgeDefinition.model_validate_json(d["definition_json"], context=AS_STORED)
            for d in await cursor.to_list()
        ]

    async def insert_award(self, org: str, award: Award, outbox: list[Document]) -> bool:
        """Insert the award with its event queued; False if the advocate had it already."""
        # By hand, as `_award` reads it: the definition as JSON.
        doc: Document = {
            "_id": award.id,
            "advocate_id": award.advocate_id,
            "badge_id": award.badge_id,
            "name": award.name,
            "definition_json": award.definition.model_dump_json(),
            "awarded_at": award.awarded_at,
        }
        try:
            await self.tenants.of(org, AWARDS).insert_one(with_outbox(doc, outbox))
        except DuplicateKeyError:
            return False
        return True

    async def award(self, org: str, award_id: str) -> Award | None:
        doc = await self.tenants.of(org, AWARDS).find_one({"_id": award_id})
        return None if doc is None else _award(doc)

    async def awards_of(self, org: str, advocate_id: str) -> list[Award]:
        cursor = (
            self.tenants.of(org, AWARDS).find({"advocate_id": advocate_id}).sort("awarded_at", DESCENDING)
        )
        return [_award(d) for d in await cursor.to_list()]

    async def set_content_author(self, org: str, content_id: str, author: str) -> None:
        await self.tenants.of(org, CONTENT_AUTHORS).update_one(
            {"_id": joined_id(org, content_id)}, {"$set": {"author": author}}, upsert=True
        )

    async def content_author(self, org: str, content_id: str) -> str | None:
        doc = await self.tenants.of(org, CONTENT_AUTHORS).find_one({"_id": joined_id(org, content_id)})
        return None if doc is None else str(doc["author"])

    async def add_colleague_sharer(self, org: str, author: str, sharer: str) -> int:
        """Record that `sharer` shared `author`'s content; returns how many distinct colleagues have."""
        shares = self.tenants.of(org, COLLEAGUE_SHARES)
        with contextlib.suppress(DuplicateKeyError):
            await shares.insert_one(
                {"_id": joined_id(org, author, sharer), "author": author, "sharer": sharer}
            )
        return await shares.count_documents({"author": author})

    async def erase(self, org: str, advocate_id: str) -> None:
        await self.tenants.of(org, AWARDS).delete_many({"advocate_id": advocate_id})
        await self.tenants.of(org, COLLEAGUE_SHARES).delete_many(
            {"$or": [{"author": advocate_id}, {"sharer": advocate_id}]}
        )
        # Their content is nobody's now: once their erasure's marker expires, a colleague's share
        # of it must not count for them again.
        await self.tenants.of(org, CONTENT_AUTHORS).delete_many({"author": advocate_id})
