"""Kudos (`kudos`, and each giver's count per week in `kudos_weeks`), personal goals (`goals`)
and shares per tag and advocate (`tag_shares`, which top-on-tag goals rank)."""

from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from services.recognition.engagement.domain import Goal, GoalKind, GoalSpec, Kudos
from shared.documents import Documents
from shared.migrations import drop_index
from shared.mongo import (
    Document,
    IndexSpec,
    apply_once,
    created_at,
    insert_unless_there,
    joined_id,
    newest_first,
    pending_index,
    was_applied,
)
from shared.tenancy import Tenants

KUDOS = "kudos"
KUDOS_WEEKS = "kudos_weeks"
GOALS = "goals"
TAG_SHARES = "tag_shares"

INDEXES: list[IndexSpec] = [
    # Kudos received and sent, in page order (newest first, ties by id): else each page sorts them all.
    IndexSpec(KUDOS, [("org", ASCENDING), ("to", ASCENDING), ("created_at", DESCENDING), ("_id", ASCENDING)]),
    IndexSpec(
        KUDOS, [("org", ASCENDING), ("from", ASCENDING), ("created_at", DESCENDING), ("_id", ASCENDING)]
    ),
    pending_index(KUDOS, "created_at", {"scored": False}, name="kudos_to_score"),
    IndexSpec(GOALS, [("org", ASCENDING), ("advocate_id", ASCENDING)]),
    IndexSpec(TAG_SHARES, [("org", ASCENDING), ("tag", ASCENDING), ("shares", DESCENDING)]),
]

# The kudos lists' indexes before they were paged by id too: the ones above serve all they did.
MIGRATIONS = [
    drop_index(KUDOS, "org_1_to_1_created_at_-1"),
    drop_index(KUDOS, "org_1_from_1_created_at_-1"),
]


# Kudos written before `scored` were scored in their request.
KUDOS_DOCUMENTS = Documents(Kudos, stored_as={"giver": "from", "receiver": "to"}, older={"scored": True})


def _goal(doc: Document) -> Goal:
    """By hand: the document flattens the goal's `spec` into its own fields, which Documents does not."""
    spec = GoalSpec(GoalKind(doc["kind"]), int(doc["target"]), doc.get("course_id"), doc.get("tag"))
    return Goal(doc["_id"], doc["advocate_id"], spec, doc["created_at"])


class EngagementStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tenants = Tenants(db)

    # --- kudos ---------------------------------------------------------------------------------

    async def take_kudos_allowance(
        self, org: str, giver: str, week: str, allowance: int, kudos_id: str
    ) -> bool:
        """Count kudos against the giver's week, in one conditional upsert that remembers it; True
        when it is counted, by this call or by an earlier try of it, False at the allowance."""
        if allowance < 1:
            return False  # an upsert would create the week's document with one given
        weeks, week_id = self.tenants.of(org, KUDOS_WEEKS), joined_id(org, giver, week)
        under = {"given": {"$lt": allowance}}
        counted = await apply_once(
            weeks, week_id, kudos_id, {"$inc": {"given": 1}}, {"giver": giver}, condition=under
        )
        return counted or await was_applied(weeks, week_id, kudos_id)

    async def kudos_given(self, org: str, giver: str, week: str) -> int:
        doc = await self.tenants.of(org, KUDOS_WEEKS).find_one({"_id": joined_id(org, giver, week)})
        return 0 if doc is None else int(doc["given"])

    async def insert_kudos(self, org: str, kudos: Kudos) -> Kudos:
        """Write kudos, or answer the ones there with its id (a retry of the same request)."""
        return await KUDOS_DOCUMENTS.insert_once(self.tenants.of(org, KUDOS), kudos)

    async def kudos_made_at(self, org: str, kudos_id: str) -> datetime | None:
        """When the kudos with this id were given; None if there are none."""
        return await created_at(self.tenants.of(org, KUDOS), kudos_id)

    async def mark_scored(self, org: str, kudos_id: str) -> None:
        await self.tenants.of(org, KUDOS).update_one({"_id": kudos_id}, {"$set": {"scored": True}})

    async def unscored_kudos(self, older_than: datetime, limit: int = 200) -> list[tuple[str, Kudos]]:
        """Kudos whose receiver's points a request did not write, with their organisation."""
        all_kudos = self.tenants.across(KUDOS, why="the relay scores every org's kudos left unscored")
        cursor = all_kudos.find({"scored": False, "created_at": {"$lt": older_than}}).limit(limit)
        return [(d["org"], KUDOS_DOCUMENTS.entity(d)) for d in await cursor.to_list()]

    async def kudos_received(
        self, org: str, advocate_id: str, *, after: tuple[datetime, str] | None, limit: int
    ) -> list[Kudos]:
        cursor = newest_first(self.tenants.of(org, KUDOS), {"to": advocate_id}, after, limit)
        return [KUDOS_DOCUMENTS.entity(d) for d in await cursor.to_list()]

    async def kudos_sent(
        self, org: str, advocate_id: str, *, after: tuple[datetime, str] | None, limit: int
    ) -> list[Kudos]:
        cursor = newest_first(self.tenants.of(org, KUDOS), {"from": advocate_id}, after, limit)
        return [KUDOS_DOCUMENTS.entity(d) for d in await cursor.to_list()]

    # --- goals ---------------------------------------------------------------------------------

    async def insert_goal(self, org: str, goal: Goal) -> Goal:
        """Write the goal, or answer the one there with its id (a retry of the same request)."""
        # By hand, as `_goal` reads it: the spec flattened.
        document = {
            "_id": goal.id,
            "advocate_id": goal.advocate_id,
            "kind": str(goal.spec.kind),
            "target": goal.spec.target,
            "course_id": goal.spec.course_id,
            "tag": goal.spec.tag,
            "created_at": goal.created_at,
        }
        there = await insert_unless_there(self.tenants.of(org, GOALS), document)
        return goal if there is None else _goal(there)

    async def goal_made_at(self, org: str, goal_id: str) -> datetime | None:
        """When the goal with this id was set; None if there is none."""
        return await created_at(self.tenants.of(org, GOALS), goal_id)

    async def goals_of(self, org: str, advocate_id: str) -> list[Goal]:
        cursor = self.tenants.of(org, GOALS).find({"advocate_id": advocate_id}).sort("created_at", ASCENDING)
        return [_goal(d) for d in await cursor.to_list()]

    async def delete_goal(self, org: str, advocate_id: str, goal_id: str) -> bool:
        result = await self.tenants.of(org, GOALS).delete_one({"_id": goal_id, "advocate_id": advocate_id})
        return bool(result.deleted_count)

    # --- shares per tag ------------------------------------------------------------------------

    async def add_tag_share(self, org: str, advocate_id: str, tags: list[str], event_id: str) -> None:
        for tag in tags:
            await apply_once(
                self.tenants.of(org, TAG_SHARES),
                joined_id(org, tag, advocate_id),
                event_id,
                {"$inc": {"shares": 1}},
                {"tag": tag, "advocate_id": advocate_id},
            )

    async def tag_rank(self, org: str, tag: str, advocate_id: str) -> int:
        """1-based rank on a tag by shares (0 when the advocate has none)."""
        tag_shares = self.tenants.of(org, TAG_SHARES)
        doc = await tag_shares.find_one({"_id": joined_id(org, tag, advocate_id)})
        if doc is None or not doc.get("shares"):
            return 0
        return await tag_shares.count_documents({"tag": tag, "shares": {"$gt": doc["shares"]}}) + 1

    async def erase(self, org: str, advocate_id: str) -> None:
        await self.tenants.of(org, KUDOS).delete_many({"to": advocate_id})
        await self.tenants.of(org, KUDOS).update_many({"from": advocate_id}, {"$set": {"from": None}})
        await self.tenants.of(org, KUDOS_WEEKS).delete_many({"giver": advocate_id})
        await self.tenants.of(org, GOALS).delete_many({"advocate_id": advocate_id})
        await self.tenants.of(org, TAG_SHARES).delete_many({"advocate_id": advocate_id})
