"""What sharing knows of the content service: the content that may be shared and each
organisation's rules, as projected from chorus.content (the rules that use them are in
shares/domain.py; the redirect follows archived content and fallbacks)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.clock import DEFAULT_TIME_ZONE


@dataclass(frozen=True)
class OrgRules:
    """The organisation's governance settings (from chorus.settings.updated) and policy version."""

    required_disclosure: str | None = None
    blocked_words: tuple[str, ...] = ()
    require_policy_acknowledgement: bool = False
    required_course_ids: tuple[str, ...] = ()
    daily_share_limit: int | None = None
    sharing_hours_start: int | None = None
    sharing_hours_end: int | None = None
    fallback_url: str | None = None
    unique_click_window_hours: int = 24
    time_zone: str = DEFAULT_TIME_ZONE  # IANA: the sharing hours and the daily limit's day follow it
    policy_version: int | None = None  # newest published policy
    names_visible_by_default: bool = False  # colleagues see names unless an advocate chose otherwise
    erase_leavers: bool = False  # a user the directory deactivates or deletes is erased at once


@dataclass(frozen=True)
class ContentView:
    content_id: str
    status: str  # published, updated status, archived, rejected
    url: str
    title: str = ""
    content_type: str = "article"
    tags: tuple[str, ...] = ()
    language: str | None = None
    teams: tuple[str, ...] = ()
    departments: tuple[str, ...] = ()
    locations: tuple[str, ...] = ()
    starts_at: datetime | None = None
    expires_at: datetime | None = None
    networks: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContentChange:
    """What the redirect follows of a content item, across organisations."""

    org: str
    content_id: str
    status: str | None
    expires_at: datetime | None
    updated_at: datetime

    @property
    def closed(self) -> bool:
        """Its links lead to the fallback."""
        return self.status in ("archived", "rejected")


@dataclass(frozen=True)
class SettingsChange:
    """An organisation's rules as changed at `updated_at` (for the redirect, across organisations)."""

    org: str
    rules: OrgRules
    updated_at: datetime
