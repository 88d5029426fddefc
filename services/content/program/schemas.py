"""HTTP models of the organisation's program settings."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, StrictBool, StringConstraints, WithJsonSchema

from services.content.schemas import WebUrl
from shared.clock import DEFAULT_TIME_ZONE, time_zone_names
from shared.fields import LINE, NOT_BOOLEAN, VISIBLE_LINE, Text
from shared.schemas import RequestBody


def zone_member_name(zone: str) -> str:
    """The name a generated client gives a zone's enum member (`x-enum-varnames`). Left to
    itself a generator keeps only letters and digits, which makes Etc/GMT+1 and Etc/GMT-1 one
    member (or fails): here the signs are spelt out, Etc/GMT+1 is ETC_GMT_PLUS_1."""
    spelt = re.sub(r"-(?=\d)", "_MINUS_", zone).replace("+", "_PLUS_")
    return re.sub(r"\W", "_", spelt).upper()


ZONE_SCHEMA = {
    "type": "string",
    "enum": list(time_zone_names()),
    "x-enum-varnames": [zone_member_name(zone) for zone in time_zone_names()],
}


class SettingsModel(RequestBody):
    required_disclosure: Text | None = Field(
        None, min_length=1, max_length=100, description="text every suggested post and share must keep"
    )
    blocked_words: list[Annotated[str, StringConstraints(max_length=100), VISIBLE_LINE]] = Field(
        default_factory=list, max_length=500
    )
    require_policy_acknowledgement: StrictBool = False
    required_course_ids: list[Annotated[str, StringConstraints(min_length=1, max_length=64), LINE]] = Field(
        default_factory=list, max_length=50
    )
    daily_share_limit: Annotated[int, Field(ge=1, le=1000), NOT_BOOLEAN] | None = None
    sharing_hours_start: Annotated[int, Field(ge=0, le=23), NOT_BOOLEAN] | None = Field(
        None, description="hour sharing opens, in time_zone"
    )
    sharing_hours_end: Annotated[int, Field(ge=1, le=24), NOT_BOOLEAN] | None = Field(
        None, description="hour sharing closes, in time_zone"
    )
    fallback_url: WebUrl | None = None
    unique_click_window_hours: Annotated[int, Field(ge=1, le=24 * 30), NOT_BOOLEAN] = 24
    attribution_window_days: Annotated[int, Field(ge=1, le=365), NOT_BOOLEAN] = 30
    # The names the zone database has; domain.validate_settings refuses any other, naming time_zone.
    time_zone: Annotated[str, WithJsonSchema(ZONE_SCHEMA)] = Field(
        DEFAULT_TIME_ZONE,
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
