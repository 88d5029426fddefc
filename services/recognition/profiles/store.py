"""Advocate profiles (`advocates`) and the markers of erased advocates (`erased_advocates`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from services.recognition.profiles.domain import Profile
from shared import idempotency
from shared.mongo import Document, IndexSpec, joined_id
from shared.names import Name, visible_names
from shared.tenancy import Tenants

ADVOCATES = "advocates"
ERASED = "erased_advocates"

INDEXES: list[IndexSpec] = [
    IndexSpec(ADVOCATES, [("org", ASCENDING), ("team", ASCENDING)]),
    # An erasure's marker expires once no event can name the advocate (shared/vault.py).
    IndexSpec(ERASED, [("forget_at", ASCENDING)], options={"expireAfterSeconds": 0}),
]


class ProfileStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tenants = Tenants(db)

    async def upsert(self, org: str, profile: Profile) -> None:
        await self.tenants.of(org, ADVOCATES).update_one(
            {"_id": joined_id(org, profile.advocate_id)},
            {
                "$set": {
                    "advocate_id": profile.advocate_id,
                    "team": profile.team,
                    "public_ranking_consent": profile.public_ranking_consent,
                    "audience": profile.audience,
                    "active": profile.active,
                    "display_name": profile.display_name,
                    "avatar_url": profile.avatar_url,
                }
            },
            upsert=True,
        )

    async def get(self, org: str, advocate_id: str) -> Profile | None:
        doc = await self.tenants.of(org, ADVOCATES).find_one({"_id": joined_id(org, advocate_id)})
        if doc is None:
            return None
        return Profile(
            advocate_id,
            doc.get("team"),
            bool(doc.get("public_ranking_consent", True)),
            int(doc.get("audience", 0)),
            bool(doc.get("active", True)),
            doc.get("display_name"),
            doc.get("avatar_url"),
        )

    async def names(self, org: str, advocate_ids: Iterable[str]) -> dict[str, Name]:
        return await visible_names(self.tenants.of(org, ADVOCATES), advocate_ids)

    async def members_by_team(self, org: str) -> dict[str, int]:
        pipeline: list[Document] = [
            # Leavers are not active members of their team (profiles kept before `active` have none).
            {"$match": {"team": {"$ne": None}, "active": {"$ne": False}}},
            {"$group": {"_id": "$team", "n": {"$sum": 1}}},
        ]
        rows = await (await self.tenants.of(org, ADVOCATES).aggregate(pipeline)).to_list()
        return {str(r["_id"]): int(r["n"]) for r in rows}

    async def delete(self, org: str, advocate_id: str) -> None:
        await self.tenants.of(org, ADVOCATES).delete_one({"_id": joined_id(org, advocate_id)})
        # Stored answers of kudos and redemptions name the advocate.
        await idempotency.forget_answers_naming(self.tenants.db, org, advocate_id)

    async def mark_erased(self, org: str, marker: str, forget_at: datetime) -> None:
        await self.tenants.of(org, ERASED).update_one(
            {"_id": joined_id(org, marker)}, {"$set": {"org": org, "forget_at": forget_at}}, upsert=True
        )

    async def is_erased(self, org: str, marker: str) -> bool:
        return await self.tenants.of(org, ERASED).find_one({"_id": joined_id(org, marker)}) is not None
