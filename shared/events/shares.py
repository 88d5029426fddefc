"""Events on `chorus.shares` (key: share id)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from shared.events.envelope import EventData, event
from shared.events.personal import PERSON, Personal
from shared.events.topics import SHARES


@event("chorus.share.made", topic=SHARES, key="share_id")
class ShareMade(EventData):
    share_id: str
    advocate_id: Annotated[str, PERSON]
    content_id: str
    network: str
    code: str
    short_url: str
    target_url: str
    audience_size: int = Field(0, description="the advocate's audience on that network at share time")
    team: Annotated[str | None, Personal(of="advocate_id")] = None
    department: Annotated[str | None, Personal(of="advocate_id")] = None
    tags: list[str] = Field(default_factory=list)
    shared_at: datetime
    content_type: str | None = Field(
        None, description="the content's type at share time (article, video, job_opening, ...); since 2026-12"
    )
