"""HTTP models of the organisation's program settings."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictBool, StringConstraints

from services.content.schemas import Request, Url
from shared.clock import DEFAULT_TIME_ZONE


class SettingsModel(Request):
    required_disclosure: str | None = Field(
        None, min_length=1, max_length=100, description="text every suggested post and share must keep"
    )
    blocked_words: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=500
    )
    require_policy_acknowledgement: bool = False
    required_course_ids: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=50
    )
    daily_share_limit: int | None = Field(None, ge=1, le=1000)
    sharing_hours_start: int | None = Field(None, ge=0, le=23, description="hour sharing opens, in time_zone")
    sharing_hours_end: int | None = Field(None, ge=1, le=24, description="hour sharing closes, in time_zone")
    fallback_url: Url | None = None
    unique_click_window_hours: int = Field(24, ge=1, le=24 * 30)
    attribution_window_days: int = Field(30, ge=1, le=365)
    time_zone: str = Field(
        DEFAULT_TIME_ZONE,
        min_length=1,
        max_length=64,
        description="IANA time zone (e.g. America/Los_Angeles): the sharing hours, the daily share limit"
        " and the days, weeks and months of the figures follow it",
    )
    erase_leavers: StrictBool = Field(
        False,
        description="an advocate the company directory (SCIM) deactivates or deletes is erased at once, as"
        " DELETE /v1/advocates/{id} does; otherwise they stay, inactive, with their history",
    )
    names_visible_by_default: StrictBool = Field(
        False,
        description="advocates' names and pictures are shown to colleagues (leaderboards, kudos, authors,"
        " the colleague directory) unless an advocate chose otherwise (their name_visible)",
    )
