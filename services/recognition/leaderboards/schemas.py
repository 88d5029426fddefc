"""HTTP models of the leaderboards."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.schemas import ResponseBody


class BoardRow(ResponseBody):
    rank: int
    points: int
    advocate_id: str | None = Field(None, description="set on advocate boards")
    display_name: str | None = Field(
        None, description="advocate boards: their name, when they let colleagues see it (else null)"
    )
    avatar_url: str | None = Field(None, description="advocate boards: their picture, likewise")
    team: str | None = None
    active_advocates: int | None = Field(None, description="team boards: enrolled advocates of the team")
    points_per_advocate: float | None = Field(None, description="team boards: what teams are ranked by")
    is_me: bool = False


class LeaderboardOut(ResponseBody):
    period: str
    period_key: str
    scope: Literal["org", "team"]
    team: str | None
    items: list[BoardRow]
    next_cursor: str | None
    me: BoardRow | None = Field(None, description="your own standing, shown to you even if you opted out")
    as_of: datetime | None = Field(
        None, description="when the standings were read from the board projection (advocate boards)"
    )
