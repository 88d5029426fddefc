"""Leaderboards: the boards the ledger's entries count on, served from standings in memory."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass
from datetime import datetime

from services.recognition.leaderboards import domain
from services.recognition.leaderboards.domain import Period
from services.recognition.leaderboards.standings import (
    NamesCache,
    Row,
    Standings,
    StandingsCache,
    TeamBoard,
    standings_of,
)
from services.recognition.leaderboards.store import BoardStore
from services.recognition.profiles.service import ProfileService
from services.recognition.rules.service import RulesService
from shared.clock import Clock, utc_now
from shared.errors import InvalidInput
from shared.pagination import decode_keys, encode_keys


@dataclass(eq=False)
class LeaderboardService:
    store: BoardStore
    rules: RulesService
    profiles: ProfileService
    _: KW_ONLY
    max_age_s: float
    clock: Clock = utc_now

    def __post_init__(self) -> None:
        self.standings = StandingsCache(
            standings_of(self.store.entries, self.clock), max_age_s=self.max_age_s
        )
        self.team_boards = StandingsCache(self._rank_teams, max_age_s=self.max_age_s)
        # Names on the boards are as fresh as the boards: read from the profiles once per
        # max_age_s per advocate, not on every request (a query per page halved the req/s).
        self._names = NamesCache(self.profiles, self.max_age_s)

    # --- the projection ------------------------------------------------------------------------

    async def count(
        self, org: str, advocate_id: str, team: str | None, periods: Sequence[str], entry_id: str, points: int
    ) -> None:
        """Count a ledger entry's points on its boards (and its team's), once per entry."""
        profile = await self.profiles.get(org, advocate_id)
        # As follow_consent keeps the rest: a leaver's new entry (a click on an old share scoring
        # in a new week) is hidden like their others.
        visible = True if profile is None else profile.ranked
        updates = [self.store.add(org, p, advocate_id, team, visible, entry_id, points) for p in periods]
        if team:
            updates += [self.store.add_to_team(org, p, team, entry_id, points) for p in periods]
        await asyncio.gather(*updates)  # different documents: safe to run together

    async def follow_consent(self, org: str, advocate_id: str, public: bool) -> None:
        # Every time, not only when the consent changed: the boards then follow the profile even
        # if a crash came between the profile's write and this one, and no update has to say
        # what it replaced.
        await self.store.set_visibility(org, advocate_id, public)

    async def erase(self, org: str, advocate_id: str, token: str) -> None:
        """Off every board; team totals drop by what the advocate contributed, so team boards
        stay the sum of their members."""
        for standing in await self.store.standings_of(org, advocate_id):
            for team, points in standing.teams.items():
                if points:
                    await self.store.add_to_team(org, standing.period, team, f"erase:{standing.id}", -points)
            await self.store.delete(org, standing.id)
        self._names.forget(org, advocate_id)

    # --- reading ---------------------------------------------------------------------------------

    async def board_key(self, org: str, period: Period, contest_id: str | None, at: datetime | None) -> str:
        at = at or self.clock()
        if period is not Period.CONTEST:
            return domain.period_key(period, at)
        _, rules = await self.rules.rules(org)
        return domain.board_key(rules, period, contest_id, at)

    async def leaderboard(
        self, org: str, viewer: str, key: str, team: str | None, cursor: str | None, limit: int
    ) -> tuple[list[Row], str | None, Row | None, Standings]:
        """Advocates in points order (visible ones only), plus the viewer's own standing."""
        value = decode_keys(cursor)
        if value is not None and not (type(value.get("p")) is int and isinstance(value.get("a"), str)):
            raise InvalidInput.field("cursor", "is not a cursor this API returned")  # another list's, say
        after = None if value is None else (value["p"], value["a"])
        standings = await self.standings.get(org, key)
        rows = standings.page(team, after, limit, viewer)
        next_cursor = None
        if len(rows) == limit:
            next_cursor = encode_keys({"p": rows[-1]["points"], "a": rows[-1]["advocate_id"]})
        me = standings.standing(viewer, team)
        await self._name(org, [*rows, *([] if me is None else [me])])
        return rows, next_cursor, me, standings

    async def around_me(
        self, org: str, viewer: str, key: str, team: str | None, size: int
    ) -> tuple[list[Row], Row | None, Standings]:
        standings = await self.standings.get(org, key)
        rows, mine = standings.around(viewer, team, size)
        await self._name(org, [*rows, *([] if mine is None else [mine])])
        return rows, mine, standings

    async def _name(self, org: str, rows: list[Row]) -> None:
        """The names of the page's rows (see domain.name_rows)."""
        domain.name_rows(rows, await self._names.of(org, [r["advocate_id"] for r in rows]))

    async def team_leaderboard(self, org: str, key: str) -> TeamBoard:
        """Teams ranked by points per active advocate (enrolled members, not erased), from the
        team standings (rebuilt when stale, like the advocates' standings)."""
        return await self.team_boards.get(org, key)

    async def _rank_teams(self, org: str, key: str) -> TeamBoard:
        as_of = self.clock()
        members = await self.profiles.members_by_team(org)
        return TeamBoard(domain.team_rows(await self.store.team_totals(org, key), members), as_of)

    async def close(self) -> None:
        await self.standings.close()
        await self.team_boards.close()
