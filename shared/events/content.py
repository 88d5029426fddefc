"""Events on `chorus.content` (key: content id): the content lifecycle.

They carry what sharing needs to decide who may share an item and how: audience, publish
window, URL, tags and the suggested posts' networks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from shared.events.envelope import EventData, event
from shared.events.personal import PERSON, Personal
from shared.events.topics import CONTENT


class Audience(EventData):
    """Who may see and share an item; empty lists mean everyone."""

    teams: list[str] = Field(default_factory=list)
    departments: list[str] = Field(default_factory=list)
    locations: list[str] = Field(default_factory=list)


class ContentSnapshot(EventData):
    content_id: str
    content_type: str
    # An advocate's own submission is theirs: its words and picture are sealed under the author's key.
    title: Annotated[str, Personal(of="author_advocate_id")]
    url: str
    summary: Annotated[str | None, Personal(of="author_advocate_id")] = None
    image_url: Annotated[str | None, Personal(of="author_advocate_id")] = None
    tags: list[str] = Field(default_factory=list)
    language: str | None = None
    audience: Audience = Field(default_factory=Audience)
    starts_at: datetime | None = None
    expires_at: datetime | None = None
    networks: list[str] = Field(default_factory=list, description="networks with suggested posts")
    author_advocate_id: Annotated[str | None, PERSON] = Field(
        None, description="set when an advocate wrote it"
    )


@event("chorus.content.submitted", topic=CONTENT, key="content_id")
class ContentSubmitted(ContentSnapshot):
    pass


@event("chorus.content.published", topic=CONTENT, key="content_id")
class ContentPublished(ContentSnapshot):
    published_by: Annotated[str, PERSON]


@event("chorus.content.updated", topic=CONTENT, key="content_id")
class ContentUpdated(ContentSnapshot):
    status: str


@event("chorus.content.rejected", topic=CONTENT, key="content_id")
class ContentRejected(EventData):
    content_id: str
    reason: str
    author_advocate_id: Annotated[str | None, PERSON] = None


@event("chorus.content.archived", topic=CONTENT, key="content_id")
class ContentArchived(EventData):
    content_id: str
    reason: str = Field(description="'manual' or 'expired'")


@event("chorus.settings.updated", topic=CONTENT, key="org_id")
class SettingsUpdated(EventData):
    """The organisation's program settings; sharing enforces them on every share."""

    org_id: str
    required_disclosure: str | None = Field(None, description="text every share must keep, e.g. '#employee'")
    blocked_words: list[str] = Field(default_factory=list)
    require_policy_acknowledgement: bool = False
    required_course_ids: list[str] = Field(default_factory=list)
    daily_share_limit: int | None = Field(None, description="shares per advocate per day; none = no limit")
    sharing_hours_start: int | None = Field(
        None, ge=0, le=23, description="hour sharing opens, in the organisation's time zone"
    )
    sharing_hours_end: int | None = Field(
        None, ge=1, le=24, description="hour sharing closes, in the organisation's time zone"
    )
    fallback_url: str | None = Field(None, description="where links to archived or expired content go")
    unique_click_window_hours: int = 24
    attribution_window_days: int = 30
    time_zone: str = Field(
        "UTC",
        description="IANA time zone of the organisation (e.g. America/Los_Angeles): its sharing hours,"
        " its daily share limit and the days, weeks and months of its figures follow it."
        " Absent from events before it existed: UTC",
    )
    erase_leavers: bool = Field(
        False,
        description="whether an advocate the company directory deactivates or deletes is erased at once."
        " Absent from events before it existed: false",
    )
    names_visible_by_default: bool = Field(
        False,
        description="whether an advocate's name and picture are shown to colleagues (leaderboards, kudos,"
        " authors, the colleague directory) unless the advocate chose otherwise. Absent from events"
        " before it existed: false (ids only)",
    )


@event("chorus.policy.published", topic=CONTENT, key="org_id")
class PolicyPublished(EventData):
    """A new version of the social media policy; acknowledgements of older versions lapse."""

    org_id: str
    version: int
    title: str
