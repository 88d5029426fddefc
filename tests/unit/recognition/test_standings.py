"""Standings: ranks, pages, around-me and opt-outs from one board's entries; the cache's refresh."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from services.recognition.leaderboards.standings import Standings, StandingsCache, standings_of
from shared.mongo import Document

AS_OF = datetime(2026, 11, 27, 12, tzinfo=UTC)


def entry(advocate: str, points: int, team: str = "red", visible: bool = True) -> Document:
    return {"advocate_id": advocate, "points": points, "team": team, "visible": visible}


BOARD = [
    entry("e", 10, "blue"),
    entry("a", 50),
    entry("hidden", 45, visible=False),
    entry("c", 40, "blue"),
    entry("b", 40),
    entry("d", 30),
]


def ranked(rows: list[Document]) -> list[tuple[str, int, int]]:
    return [(r["advocate_id"], r["points"], r["rank"]) for r in rows]


def test_pages_list_visible_advocates_in_points_order_with_competition_ranks() -> None:
    standings = Standings(BOARD, AS_OF)
    first = standings.page(None, None, 3)
    assert ranked(first) == [("a", 50, 1), ("b", 40, 2), ("c", 40, 2)]
    # The next page starts after the last row's (points, advocate), ranks carry on.
    assert ranked(standings.page(None, (40, "c"), 3)) == [("d", 30, 4), ("e", 10, 5)]
    assert standings.page(None, (10, "e"), 3) == []


def test_a_team_board_ranks_that_teams_visible_advocates_only() -> None:
    standings = Standings(BOARD, AS_OF)
    assert ranked(standings.page("blue", None, 10)) == [("c", 40, 1), ("e", 10, 2)]
    assert ranked(standings.page("red", None, 10)) == [("a", 50, 1), ("b", 40, 2), ("d", 30, 3)]
    assert standings.standing("a", "blue") is None
    assert standings.standing("c", "blue") == {
        "rank": 1,
        "points": 40,
        "advocate_id": "c",
        "team": "blue",
        "active_advocates": None,
        "points_per_advocate": None,
        "is_me": True,
    }
    assert [r["is_me"] for r in standings.page("red", None, 10, viewer="b")] == [False, True, False]


def test_an_opted_out_advocate_is_listed_to_nobody_but_sees_where_they_stand() -> None:
    standings = Standings(BOARD, AS_OF)
    assert "hidden" not in {r["advocate_id"] for r in standings.page(None, None, 100)}
    hidden = standings.standing("hidden", None)
    assert hidden is not None
    assert ranked([hidden]) == [("hidden", 45, 2)] and hidden["is_me"]
    rows, mine = standings.around("hidden", None, 1)
    assert ranked(rows) == [("a", 50, 1), ("hidden", 45, 2), ("b", 40, 2)]
    assert [r["is_me"] for r in rows] == [False, True, False]
    assert mine is not None and mine["rank"] == 2
    assert standings.standing("nobody", None) is None
    assert standings.around("nobody", None, 2) == ([], None)


def test_around_me_stops_at_the_ends_of_the_board() -> None:
    standings = Standings(BOARD, AS_OF)
    rows, _ = standings.around("a", None, 2)
    assert ranked(rows) == [("a", 50, 1), ("b", 40, 2), ("c", 40, 2)]
    rows, _ = standings.around("d", None, 2)
    assert ranked(rows) == [("b", 40, 2), ("c", 40, 2), ("d", 30, 4), ("e", 10, 5)]


class Board:
    """A board loader whose entries the test changes; counts and can hold its reads."""

    def __init__(self) -> None:
        self.entries = [entry("a", 10)]
        self.loads = 0
        self.gate: asyncio.Event | None = None
        self.down = False  # the database went away

    async def load(self, org: str, period: str) -> list[Document]:
        self.loads += 1
        if self.down:
            raise ConnectionError("database away")
        if self.gate is not None:
            await self.gate.wait()
        return list(self.entries)


async def test_the_cache_serves_standings_until_stale_then_rebuilds_in_the_background() -> None:
    board = Board()
    cache = StandingsCache(standings_of(board.load, lambda: AS_OF), max_age_s=0.05)
    first = await cache.get("org", "week")
    board.entries = [entry("a", 10), entry("b", 20)]
    assert await cache.get("org", "week") is first and board.loads == 1  # fresh enough
    await asyncio.sleep(0.06)
    board.gate = asyncio.Event()
    stale = await cache.get("org", "week")  # answered at once from the old standings
    assert stale is first and len(stale) == 1
    await asyncio.sleep(0)  # the rebuild starts, and waits for the database
    assert await cache.get("org", "week") is first and board.loads == 2  # one rebuild at a time
    board.gate.set()
    await asyncio.sleep(0.01)
    rebuilt = await cache.get("org", "week")
    assert len(rebuilt) == 2 and ranked(rebuilt.page(None, None, 5)) == [("b", 20, 1), ("a", 10, 2)]
    await cache.close()


async def test_concurrent_first_requests_share_one_build_and_boards_are_kept_apart() -> None:
    board = Board()
    board.gate = asyncio.Event()
    cache = StandingsCache(standings_of(board.load, lambda: AS_OF), max_age_s=60)
    waiting = [asyncio.create_task(cache.get("org", "week")) for _ in range(5)]
    await asyncio.sleep(0.01)
    board.gate.set()
    results = await asyncio.gather(*waiting)
    assert board.loads == 1 and all(r is results[0] for r in results)
    other = await cache.get("org", "month")
    assert other is not results[0] and board.loads == 2
    await cache.close()


async def test_a_failed_rebuild_keeps_the_standings_it_had() -> None:
    board = Board()
    cache = StandingsCache(standings_of(board.load, lambda: AS_OF), max_age_s=0.01)
    first = await cache.get("org", "week")

    board.down = True  # the database goes away after the first build
    await asyncio.sleep(0.02)
    assert await cache.get("org", "week") is first
    await asyncio.sleep(0.01)
    assert board.loads == 2  # the rebuild was tried, and failed
    assert await cache.get("org", "week") is first
    await cache.close()
