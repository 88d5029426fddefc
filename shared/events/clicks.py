"""Events on `chorus.clicks` (key: share id, so a share's clicks stay in order)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from shared.events.envelope import EventData, event
from shared.events.topics import CLICKS

# The query parameter the redirect adds to the target URL with the click id (for attribution).
CLICK_ID_PARAM = "chorus_cid"


@event("chorus.click.recorded", topic=CLICKS, key="share_id")
class ClickRecorded(EventData):
    click_id: str
    share_id: str
    advocate_id: str
    content_id: str
    network: str
    clicked_at: datetime
    visitor_hash: str | None = Field(None, description="salted, rotating hash; absent under DNT")
    device: str = "unknown"
    browser: str = "unknown"
    referrer_host: str | None = None
    country: str | None = None
    bot: bool = False
    unique: bool = True
    self_click: bool = Field(False, alias="self", description="the advocate's own click")
    team: str | None = None
    tags: list[str] = Field(default_factory=list)
    fallback: bool = Field(
        False, description="the content was archived or expired: the visitor went to the org's fallback URL"
    )
