"""The rules' versions: one document per (organisation, version), never edited but by an
erasure, which takes the erased person out of them."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.recognition.rules.domain import Rules, RuleVersion, without_advocate
from shared.fields import AS_STORED
from shared.mongo import Document, IndexSpec, erase_person, joined_id
from shared.tenancy import Tenants

RULES = "rules"

INDEXES: list[IndexSpec] = [
    IndexSpec(RULES, [("org", ASCENDING), ("version", DESCENDING)], unique=True),
]


def _version(doc: Document) -> RuleVersion:
    """By hand: the rules are stored as JSON, read back in the AS_STORED validation context."""
    return RuleVersion(
        version=int(doc["version"]),
        rules=Rules.model_validate_json(doc["rules_json"], context=AS_STORED),
        created_by=doc["created_by"],
        created_at=doc["created_at"],
    )


class RulesStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tenants = Tenants(db)

    async def latest(self, org: str) -> RuleVersion | None:
        doc = await self.tenants.of(org, RULES).find_one({}, sort=[("version", DESCENDING)])
        return None if doc is None else _version(doc)

    async def insert(self, org: str, published: RuleVersion) -> bool:
        """False when that version exists already (someone published at the same moment)."""
        # By hand, as `_version` reads it: the rules as JSON.
        try:
            await self.tenants.of(org, RULES).insert_one(
                {
                    "_id": joined_id(org, str(published.version)),
                    "version": published.version,
                    "rules_json": published.rules.model_dump_json(),
                    "created_by": published.created_by,
                    "created_at": published.created_at,
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def versions(self, org: str, *, before_version: int | None, limit: int) -> list[RuleVersion]:
        query: Document = {} if before_version is None else {"version": {"$lt": before_version}}
        cursor = self.tenants.of(org, RULES).find(query).sort("version", DESCENDING).limit(limit)
        return [_version(d) for d in await cursor.to_list()]

    async def erase_author(self, org: str, person: str) -> None:
        """The versions `person` (erased) published name nobody, and none excludes them by name
        any longer (an organisation publishes few: the org's part of the index narrows this
        enough). The one edit of a version: the rules it applies to everyone else are unchanged."""
        rules = self.tenants.of(org, RULES)
        await erase_person(rules, "created_by", person)
        async for doc in rules.find({}, {"rules_json": 1}):
            kept = without_advocate(Rules.model_validate_json(doc["rules_json"], context=AS_STORED), person)
            if kept is not None:
                await rules.update_one({"_id": doc["_id"]}, {"$set": {"rules_json": kept.model_dump_json()}})
