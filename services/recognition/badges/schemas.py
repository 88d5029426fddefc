"""HTTP models of the badges."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from services.recognition.badges.domain import BadgeDefinition
from shared.pagination import Page
from shared.schemas import ResponseBody


class BadgeDefinitionOut(BadgeDefinition, ResponseBody):
    pass


class BadgeDefinitionPage(Page[BadgeDefinitionOut]):
    pass


class AwardOut(ResponseBody):
    award_id: str
    badge_id: str
    name: str
    awarded_at: datetime
    credential_url: str
    display_name: str | None = Field(None, description="the earner's name, when they let colleagues see it")
    avatar_url: str | None = Field(None, description="the earner's picture, likewise")


class AwardPage(Page[AwardOut]):
    pass
