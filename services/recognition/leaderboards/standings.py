"""Leaderboard standings served from memory: a ranked copy of one board's projection.

The boards collection (one document per organisation, period and advocate, kept by the ledger
projector) is the projection. Ranking it per request would mean, on every request, reading a
range of the `board_order` index and counting the visible advocates ahead of the viewer (a count
that walks the index up to the viewer's rank: 100,000 keys for the last of 100,000 advocates).
So each process keeps the standings of the boards being read, built from one indexed read of the
board's documents and ranked once; a request reads no database:

- a request is a lookup and a slice (pages, ranks, "around me", the viewer's own standing);
- standings older than `max_age_s` are rebuilt in the background while requests are served
  the previous ones, so a board is at most `max_age_s` plus one build old (responses say
  `as_of`); a board nobody asked for yet is built before the first answer;
- a board is rebuilt no more often than every 4 builds' time, so a slow database spends at
  most a fifth of its time on it; boards not read for `forget_after_s` are dropped.

Ranks are competition ranks among the visible advocates ("1224": equal points share a rank).
An advocate who opted out is listed to nobody, and sees their own rank as where they would
stand: one more than the visible advocates with more points.

The team board (teams ranked by points per active advocate) is kept by the same cache: its
build reads the teams' totals and counts the active advocates per team (index reads, on
`team_boards (org, period)` and `advocates (org, team)`). The names on a board's rows are kept
the same way (`NamesCache`): read once per advocate and `max_age_s`, not per request.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, NamedTuple, TypedDict, TypeVar

from services.recognition.leaderboards.domain import competition_ranks
from services.recognition.profiles.service import ProfileService
from shared.mongo import outliving_request
from shared.names import Name

log = logging.getLogger(__name__)


# A BoardRow as the JSON it is sent as (leaderboards api._board_response).
Row = dict[str, Any]


class BoardEntry(TypedDict):
    """One advocate's document of a board, as the store reads it: a plain mapping, since a board
    holds up to 100,000 of them and the ranking (in a thread) is what turns them into entries."""

    advocate_id: str
    points: int
    team: str | None
    visible: bool


class Entry(NamedTuple):
    advocate_id: str
    points: int
    team: str | None
    visible: bool

    def row(self, rank: int, viewer: str | None) -> Row:
        """The advocate's BoardRow."""
        return {
            "rank": rank,
            "points": self.points,
            "advocate_id": self.advocate_id,
            "team": self.team,
            "active_advocates": None,
            "points_per_advocate": None,
            "is_me": self.advocate_id == viewer,
        }


def _order(entry: Entry) -> tuple[int, str]:
    return (-entry.points, entry.advocate_id)


@dataclass
class _Ranking:
    """The visible advocates of a board (or of one team on it), best first, with their ranks."""

    entries: list[Entry]
    ranks: list[int] = field(init=False)
    keys: list[tuple[int, str]] = field(init=False)  # (-points, advocate_id), ascending
    position: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.keys = [_order(e) for e in self.entries]
        self.position = {e.advocate_id: i for i, e in enumerate(self.entries)}
        self.ranks = competition_ranks([e.points for e in self.entries])

    def ahead_of(self, points: int) -> int:
        """How many visible advocates have more points."""
        return bisect.bisect_left(self.keys, (-points, ""))


class Standings:
    """One board's entries, ranked once; each view (the organisation, a team) ranked on first use."""

    def __init__(self, docs: Iterable[Mapping[str, Any]], as_of: datetime) -> None:
        self.as_of = as_of
        entries = [
            Entry(str(d["advocate_id"]), int(d.get("points", 0)), d.get("team"), bool(d.get("visible", True)))
            for d in docs
        ]
        entries.sort(key=_order)
        self._entries = entries
        self._by_advocate = {e.advocate_id: e for e in entries}
        self._rankings: dict[str | None, _Ranking] = {}
        self._ranking(None)  # the organisation's view, ranked now rather than in a request

    def __len__(self) -> int:
        return len(self._entries)

    def _ranking(self, team: str | None) -> _Ranking:
        ranking = self._rankings.get(team)
        if ranking is None:
            ranking = _Ranking([e for e in self._entries if e.visible and (team is None or e.team == team)])
            self._rankings[team] = ranking
        return ranking

    def page(
        self, team: str | None, after: tuple[int, str] | None, limit: int, viewer: str | None = None
    ) -> list[Row]:
        """Up to `limit` visible advocates in rank order, after the (points, advocate) given; the
        `viewer`'s row, if listed, says `is_me`."""
        ranking = self._ranking(team)
        start = 0 if after is None else bisect.bisect_right(ranking.keys, (-after[0], after[1]))
        return [
            ranking.entries[i].row(ranking.ranks[i], viewer)
            for i in range(start, min(start + limit, len(ranking.entries)))
        ]

    def standing(self, advocate_id: str, team: str | None) -> Row | None:
        """The advocate's own row, listed or not; None if not on this board (or that team)."""
        entry = self._by_advocate.get(advocate_id)
        if entry is None or (team is not None and entry.team != team):
            return None
        return entry.row(self._ranking(team).ahead_of(entry.points) + 1, advocate_id)

    def around(self, advocate_id: str, team: str | None, size: int) -> tuple[list[Row], Row | None]:
        """Up to `size` visible advocates above and below the advocate (the viewer), with the
        advocate between."""
        mine = self.standing(advocate_id, team)
        if mine is None:
            return [], None
        ranking = self._ranking(team)
        entry = self._by_advocate[advocate_id]
        at = ranking.position.get(advocate_id)
        if at is None:  # not listed: where they would stand
            above_end = below_start = bisect.bisect_left(ranking.keys, _order(entry))
        else:
            above_end, below_start = at, at + 1
        above = range(max(0, above_end - size), above_end)
        below = range(below_start, min(below_start + size, len(ranking.entries)))
        rows = [ranking.entries[i].row(ranking.ranks[i], None) for i in above]
        rows.append(mine)
        rows.extend(ranking.entries[i].row(ranking.ranks[i], None) for i in below)
        return rows, mine


@dataclass(frozen=True)
class TeamBoard:
    """A board's teams ranked by points per active advocate (domain.team_rows)."""

    rows: list[Row]
    as_of: datetime


BoardLoader = Callable[[str, str], Awaitable[list[BoardEntry]]]
T = TypeVar("T")


def standings_of(
    load: BoardLoader, now: Callable[[], datetime]
) -> Callable[[str, str], Awaitable[Standings]]:
    """The build of a board's standings: its entries as `load` reads them, ranked, as of the read."""

    async def build(org: str, period: str) -> Standings:
        as_of = now()
        docs = await load(org, period)
        # Ranking 100,000 entries is ~0.2 s of CPU: in a thread, the loop keeps serving the
        # previous standings meanwhile (it gets the GIL back every switch interval, 5 ms).
        return await asyncio.to_thread(Standings, docs, as_of)

    return build


@dataclass
class _Held(Generic[T]):
    value: T  # what the build made: Standings, or a TeamBoard
    built_at: float  # monotonic
    build_s: float
    read_at: float
    refresh: asyncio.Task[None] | None = None


class StandingsCache(Generic[T]):
    """What `build` makes of each (organisation, period) board this process serves (standings),
    rebuilt in the background when stale."""

    def __init__(
        self,
        build: Callable[[str, str], Awaitable[T]],
        *,
        max_age_s: float,
        forget_after_s: float = 600.0,
    ) -> None:
        self._make = build
        self._max_age_s = max_age_s
        self._forget_after_s = forget_after_s
        self._held: dict[tuple[str, str], _Held[T]] = {}
        self._first_builds: dict[tuple[str, str], asyncio.Task[_Held[T]]] = {}

    async def get(self, org: str, period: str) -> T:
        key = (org, period)
        clock = time.monotonic()
        held = self._held.get(key)
        if held is None:
            # Concurrent first requests share one build.
            build = self._first_builds.get(key)
            if build is None:
                build = asyncio.create_task(self._build(key))
                self._first_builds[key] = build
                build.add_done_callback(lambda _: self._first_builds.pop(key, None))
            held = await asyncio.shield(build)
            self._held[key] = held
        elif clock - held.built_at > max(self._max_age_s, 4 * held.build_s) and held.refresh is None:
            # It goes on after this request, so not within the request's MongoDB deadline.
            held.refresh = outliving_request(self._refresh(key, held), name=f"standings:{key[0]}:{key[1]}")
        held.read_at = clock
        self._forget_unread(clock)
        return held.value

    async def _build(self, key: tuple[str, str]) -> _Held[T]:
        started = time.monotonic()
        value = await self._make(*key)
        finished = time.monotonic()
        return _Held(value, built_at=finished, build_s=finished - started, read_at=finished)

    async def _refresh(self, key: tuple[str, str], held: _Held[T]) -> None:
        try:
            fresh = await self._build(key)
        except Exception:
            # Keep serving what we have; the next request past max_age tries again.
            log.exception("leaderboard %s: rebuilding its standings failed", key)
            held.refresh = None
            held.built_at = time.monotonic()
            return
        fresh.read_at = held.read_at
        self._held[key] = fresh

    def _forget_unread(self, clock: float) -> None:
        for key, held in list(self._held.items()):
            if clock - held.read_at > self._forget_after_s and held.refresh is None:
                del self._held[key]

    async def close(self) -> None:
        tasks: list[asyncio.Task[Any]] = [h.refresh for h in self._held.values() if h.refresh is not None]
        tasks += self._first_builds.values()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


NEVER: tuple[float, Name | None] = (float("-inf"), None)


class NamesCache:
    """Advocates' names as the profiles hold them, each kept for `max_age_s` (None: shown by id)."""

    MAX_KEPT = 200_000

    def __init__(self, profiles: ProfileService, max_age_s: float) -> None:
        self._profiles = profiles
        self._max_age_s = max_age_s
        self._kept: dict[tuple[str, str], tuple[float, Name | None]] = {}

    async def of(self, org: str, advocate_ids: Sequence[str]) -> dict[str, Name]:
        now = time.monotonic()
        if len(self._kept) > self.MAX_KEPT:
            self._kept.clear()
        stale = [a for a in advocate_ids if now - self._kept.get((org, a), NEVER)[0] > self._max_age_s]
        if stale:
            found = await self._profiles.names(org, stale)
            for advocate_id in stale:
                self._kept[(org, advocate_id)] = (now, found.get(advocate_id))
        names = {a: self._kept.get((org, a), NEVER)[1] for a in advocate_ids}
        return {a: name for a, name in names.items() if name is not None}

    def forget(self, org: str, advocate_id: str) -> None:
        self._kept.pop((org, advocate_id), None)
