"""The only MongoDB code of the goals: goals, and their daily snapshots."""

from __future__ import annotations

import sys
from datetime import datetime

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from services.metrics.goals.domain import Goal, Snapshot
from services.metrics.paging import page_by_id
from shared.documents import Documents
from shared.ids import ERASED
from shared.migrations import Migration, drop_index
from shared.mongo import Document, IndexSpec, erase_person, made_with_key_filter
from shared.tenancy import Tenants

GOALS = "goals"
GOAL_SNAPSHOTS = "goal_snapshots"
MAX_SNAPSHOTS = 400

INDEXES: list[IndexSpec] = [
    # The organisation's goals, and a create's retry looking for the goal its first try made
    # (`made_with_key`).
    IndexSpec(GOALS, [("org", ASCENDING), ("request_key", ASCENDING)]),
    IndexSpec(GOAL_SNAPSHOTS, [("org", ASCENDING), ("goal_id", ASCENDING), ("date", ASCENDING)]),
]


GOAL_DOCUMENTS = Documents(Goal)


async def _cap_infinite_targets(db: AsyncDatabase[Document]) -> int:
    """Goals created with `"target": Infinity`, before requests refused what JSON has no word for,
    get the largest float: as far out of reach, and a number an answer can carry."""
    goals = Tenants(db).across(GOALS, why="a migration of every organisation's goals")
    result = await goals.update_many({"target": float("inf")}, {"$set": {"target": sys.float_info.max}})
    return result.modified_count


async def _forget_snapshots_of_deleted_goals(db: AsyncDatabase[Document]) -> int:
    """Deleting a goal left its snapshots behind until 2026-12: those of goals no longer there go."""
    snapshots = Tenants(db).across(GOAL_SNAPSHOTS, why="a migration of every organisation's goal snapshots")
    store = GoalStore(db)
    removed = 0
    async for goal in await snapshots.aggregate(
        [{"$group": {"_id": {"org": "$org", "goal_id": "$goal_id"}}}]
    ):
        removed += await store.forget_snapshots_if_deleted(goal["_id"]["org"], goal["_id"]["goal_id"])
    return removed


# The organisation's index from before goals kept their request's key: the new one serves its
# queries as well.
MIGRATIONS = [
    Migration("2026-12-goal-targets-finite", _cap_infinite_targets),
    drop_index(GOALS, "org_1"),
    Migration("2026-12-goal-snapshots-of-deleted-goals", _forget_snapshots_of_deleted_goals),
]


class GoalStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tenants = Tenants(db)

    async def insert(self, goal: Goal) -> None:
        await self.tenants.of(goal.org, GOALS).insert_one(GOAL_DOCUMENTS.document(goal))

    async def made_with_key(self, org: str, key: str, now: datetime) -> Goal | None:
        """The goal made by a request with this Idempotency-Key, in the key's lifetime."""
        return await GOAL_DOCUMENTS.one(self.tenants.of(org, GOALS), made_with_key_filter(key, now))

    async def get(self, org: str, goal_id: str) -> Goal | None:
        return await GOAL_DOCUMENTS.one(self.tenants.of(org, GOALS), {"_id": goal_id})

    async def page(self, org: str, cursor: str | None, limit: int) -> tuple[list[Goal], str | None]:
        return await page_by_id(self.tenants.of(org, GOALS), GOAL_DOCUMENTS, cursor, limit)

    async def delete(self, org: str, goal_id: str) -> bool:
        """Remove the goal, then its snapshots; the snapshots go even when the goal was gone
        already, so a retry finishes a deletion that stopped between the two."""
        result = await self.tenants.of(org, GOALS).delete_one({"_id": goal_id})
        await self.tenants.of(org, GOAL_SNAPSHOTS).delete_many({"goal_id": goal_id})
        return result.deleted_count == 1

    async def erase_creator(self, org: str, person: str) -> None:
        """The goals `person` (erased) set stay the organisation's, naming nobody; so does the key
        of the request that made one (the client's text: it may name them), and a goal measured
        on them as an advocate. An organisation has few goals: the org's part of the index
        narrows this enough."""
        goals = self.tenants.of(org, GOALS)
        await erase_person(goals, "created_by", person, also_clear=("request_key",))
        await goals.update_many(
            {"filter_dim": "advocate", "filter_key": person}, {"$set": {"filter_key": ERASED}}
        )

    async def all_goals(self) -> list[Goal]:
        goals = self.tenants.across(GOALS, why="the daily snapshot of every organisation's goals")
        return [GOAL_DOCUMENTS.entity(d) async for d in goals.find({})]

    async def save_snapshot(self, goal: Goal, snapshot: Snapshot) -> None:
        """Keep the goal's snapshot of the day, unless the goal was deleted since it was read.
        No write can be conditional on another document: the snapshot is written, then the goal
        looked for. A deletion removes the goal, then its snapshots: if it removed them before
        this write, the goal is missing here and the snapshot goes again; if after, it took it."""
        await self.tenants.of(goal.org, GOAL_SNAPSHOTS).update_one(
            {"_id": f"{goal.id}|{snapshot.date}"},
            {
                "$set": {
                    "goal_id": goal.id,
                    "date": snapshot.date,
                    "value": snapshot.value,
                    "enrolled": snapshot.enrolled,
                }
            },
            upsert=True,
        )
        await self.forget_snapshots_if_deleted(goal.org, goal.id)

    async def forget_snapshots_if_deleted(self, org: str, goal_id: str) -> int:
        """Remove the goal's snapshots if the goal is no longer there; how many went."""
        if await self.tenants.of(org, GOALS).find_one({"_id": goal_id}, {"_id": 1}) is not None:
            return 0
        result = await self.tenants.of(org, GOAL_SNAPSHOTS).delete_many({"goal_id": goal_id})
        return result.deleted_count

    async def snapshots(self, org: str, goal_id: str) -> list[Snapshot]:
        found = self.tenants.of(org, GOAL_SNAPSHOTS).find({"goal_id": goal_id})
        return [
            Snapshot(d["date"], d["value"], d["enrolled"])
            async for d in found.sort("date", ASCENDING).limit(MAX_SNAPSHOTS)
        ]
