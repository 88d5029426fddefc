"""Leaderboard rules, pure: the periods boards are kept for, competition ranks, team fairness.

Every ledger entry counts on the boards of the periods that contain it (week, month, quarter,
all time, and the contests running then); teams are ranked by points per active advocate.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from services.recognition.rules.domain import Rules
from shared.errors import InvalidInput, NotFound


class Period(StrEnum):
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    ALL = "all"
    CONTEST = "contest"


def period_key(period: Period, at: datetime, contest_id: str | None = None) -> str:
    """The board key of the period that contains `at`, e.g. 'week:2026-W48', 'quarter:2026-Q4'."""
    at = at.astimezone(UTC)
    if period is Period.WEEK:
        year, week, _ = at.isocalendar()
        return f"week:{year}-W{week:02d}"
    if period is Period.MONTH:
        return f"month:{at.year}-{at.month:02d}"
    if period is Period.QUARTER:
        return f"quarter:{at.year}-Q{(at.month - 1) // 3 + 1}"
    if period is Period.CONTEST:
        if not contest_id:
            raise ValueError("a contest period needs a contest id")
        return f"contest:{contest_id}"
    return "all"


def period_keys(at: datetime, contest_ids: tuple[str, ...] = ()) -> list[str]:
    """Every board an entry at `at` counts on."""
    keys = [period_key(p, at) for p in (Period.WEEK, Period.MONTH, Period.QUARTER, Period.ALL)]
    return keys + [period_key(Period.CONTEST, at, c) for c in contest_ids]


def week_key(at: datetime) -> str:
    return period_key(Period.WEEK, at)


def quarter_of(at: datetime) -> str:
    """The quarter that contains `at`, e.g. '2026-Q4'."""
    return period_key(Period.QUARTER, at).split(":")[1]


def quarter_bounds(at: datetime) -> tuple[datetime, datetime]:
    at = at.astimezone(UTC)
    first_month = 3 * ((at.month - 1) // 3) + 1
    start = datetime(at.year, first_month, 1, tzinfo=UTC)
    end = datetime(at.year + (first_month + 3 > 12), (first_month + 2) % 12 + 1, 1, tzinfo=UTC)
    return start, end


def board_key(rules: Rules, period: Period, contest_id: str | None, at: datetime) -> str:
    """The board asked for: a contest board only for a contest of the rules."""
    if period is Period.CONTEST:
        if not contest_id:
            raise InvalidInput.field("contest_id", "is required for the contest period")
        if not rules.has_contest(contest_id):
            raise NotFound(f"no contest {contest_id}")
    return period_key(period, at, contest_id)


# --- ranking ---------------------------------------------------------------------------------


def normalised(points: int, active_advocates: int) -> float:
    """Team points per active advocate, so a team of 3 competes fairly with a team of 30."""
    return round(points / max(1, active_advocates), 2)


def competition_ranks(
    points: list[int], *, first_position: int = 1, previous: tuple[int, int] | None = None
) -> list[int]:
    """1224 ranking: equal points share a rank. `previous` = (points, rank) of the item before."""
    ranks: list[int] = []
    last = previous
    for i, p in enumerate(points):
        position = first_position + i
        rank = last[1] if last is not None and last[0] == p else position
        ranks.append(rank)
        last = (p, rank)
    return ranks


def team_rows(totals: dict[str, int], members: dict[str, int]) -> list[dict[str, Any]]:
    """Teams ranked by points per active advocate: BoardRows, as the JSON they are sent as
    (leaderboards api._board_response)."""
    teams = sorted(
        ((normalised(points, members.get(team, 0)), team, points) for team, points in totals.items()),
        key=lambda t: (-t[0], t[1]),
    )
    ranks = competition_ranks([int(per_advocate * 100) for per_advocate, _, _ in teams])
    return [
        {
            "team": team,
            "points": points,
            "active_advocates": members.get(team, 0),
            "points_per_advocate": per_advocate,
            "advocate_id": None,
            # Sent as built, so every field BoardRow requires is here: a team has no name or picture.
            "display_name": None,
            "avatar_url": None,
            "is_me": False,
            "rank": rank,
        }
        for (per_advocate, team, points), rank in zip(teams, ranks, strict=True)
    ]


class Named(Protocol):
    """An advocate's name as colleagues see it (profiles.domain.Name)."""

    @property
    def display_name(self) -> str | None: ...

    @property
    def avatar_url(self) -> str | None: ...


def name_rows(rows: list[dict[str, Any]], names: Mapping[str, Named]) -> None:
    """Each advocate's row (a BoardRow as sent) carries their name and picture when they let
    colleagues see them, null otherwise (`names` holds only those who do)."""
    for row in rows:
        name = names.get(row["advocate_id"])
        row["display_name"] = None if name is None else name.display_name
        row["avatar_url"] = None if name is None else name.avatar_url
