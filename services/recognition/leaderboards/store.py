"""The leaderboard projection: one document per (organisation, period, advocate) in `boards`,
one per (organisation, period, team) in `team_boards`. Each records the ledger entries it
applied (`applied_events`), so applying an entry again after a crash changes nothing."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from services.recognition.leaderboards.standings import BoardEntry
from shared.mongo import Document, IndexSpec, apply_once, joined_id
from shared.tenancy import Tenants

BOARDS = "boards"
TEAM_BOARDS = "team_boards"

INDEXES: list[IndexSpec] = [
    # The leaderboard projection: one document per (period, advocate), read in points order.
    IndexSpec(
        BOARDS,
        [
            ("org", ASCENDING),
            ("period", ASCENDING),
            ("visible", ASCENDING),
            ("points", DESCENDING),
            ("advocate_id", ASCENDING),
        ],
        name="board_order",
    ),
    IndexSpec(BOARDS, [("org", ASCENDING), ("advocate_id", ASCENDING)]),
    IndexSpec(TEAM_BOARDS, [("org", ASCENDING), ("period", ASCENDING)]),
]


@dataclass(frozen=True)
class Standing:
    """An advocate's place on one board, as an erasure takes it off: the points it counted for
    each team (an advocate who changed team counted for several)."""

    id: str
    period: str
    teams: dict[str, int]


def _team_key(team: str) -> str:
    # A team's name may hold what a field name may not ('.', a leading '$').
    return hashlib.sha256(team.encode()).hexdigest()[:16]


def _standing(doc: Document) -> Standing:
    names = doc.get("team_names", {})
    teams = {names[key]: int(points) for key, points in doc.get("team_points", {}).items()}
    # A board made before it kept points by team: the points not kept so went to its last team.
    rest = int(doc.get("points", 0)) - sum(teams.values())
    if rest and not doc.get("by_team") and doc.get("team"):
        teams[doc["team"]] = teams.get(doc["team"], 0) + rest
    return Standing(doc["_id"], doc["period"], teams)


class BoardStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tenants = Tenants(db)

    async def add(
        self,
        org: str,
        period: str,
        advocate_id: str,
        team: str | None,
        visible: bool,
        entry_id: str,
        points: int,
    ) -> None:
        on_insert: Document = {
            "period": period,
            "advocate_id": advocate_id,
            "visible": visible,
            "by_team": True,
        }
        update: Document = {"$inc": {"points": points}}
        if team is None:
            on_insert["team"] = None
        else:
            # `team` is the latest (the team boards filter by it); the points are also kept by
            # team, so that an erasure takes from each team what it counted there.
            key = _team_key(team)
            update["$inc"][f"team_points.{key}"] = points
            update["$set"] = {"team": team, f"team_names.{key}": team}
        boards = self.tenants.of(org, BOARDS)
        await apply_once(boards, joined_id(org, period, advocate_id), entry_id, update, on_insert)

    async def add_to_team(self, org: str, period: str, team: str, entry_id: str, points: int) -> None:
        await apply_once(
            self.tenants.of(org, TEAM_BOARDS),
            joined_id(org, period, team),
            entry_id,
            {"$inc": {"points": points}},
            {"period": period, "team": team},
        )

    async def set_visibility(self, org: str, advocate_id: str, visible: bool) -> None:
        # Only the entries that differ: called for every profile event, it usually writes nothing.
        await self.tenants.of(org, BOARDS).update_many(
            {"advocate_id": advocate_id, "visible": {"$ne": visible}}, {"$set": {"visible": visible}}
        )

    async def entries(self, org: str, period: str) -> list[BoardEntry]:
        """Every advocate's entry on one board (see standings.py for how they are served)."""
        fields = {"_id": 0, "advocate_id": 1, "points": 1, "team": 1, "visible": 1}
        # Small batches: each batch is decoded on the event loop, so a big one would hold
        # requests up (later batches are up to 16 MB otherwise).
        cursor = self.tenants.of(org, BOARDS).find({"period": period}, fields, batch_size=2_000)
        docs = await cursor.to_list()
        return docs  # type: ignore[return-value]  # the projection is a BoardEntry's fields

    async def team_totals(self, org: str, period: str) -> dict[str, int]:
        """Each team's points on one board."""
        cursor = self.tenants.of(org, TEAM_BOARDS).find({"period": period}, {"team": 1, "points": 1})
        return {str(d["team"]): int(d["points"]) for d in await cursor.to_list()}

    async def standings_of(self, org: str, advocate_id: str) -> list[Standing]:
        cursor = self.tenants.of(org, BOARDS).find({"advocate_id": advocate_id})
        return [_standing(d) for d in await cursor.to_list()]

    async def delete(self, org: str, board_id: str) -> None:
        await self.tenants.of(org, BOARDS).delete_one({"_id": board_id})
