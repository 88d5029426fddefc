"""HTTP request and response models of the sharing API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.sharing.domain import NETWORK_HEALTH, NETWORK_LIMITS

NETWORK_NAMES = ", ".join(sorted(NETWORK_LIMITS))


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Consents(Request):
    tracking: bool = Field(True, description="the advocate's own activity may be measured")
    public_ranking: bool = Field(True, description="the advocate may appear in public leaderboards")


class ConnectedNetwork(Request):
    network: str = Field(max_length=40, description=f"one of: {NETWORK_NAMES}")
    handle: str = Field(max_length=200, description="the advocate's handle or profile URL on the network")
    audience_size: int = Field(0, ge=0, le=1_000_000_000, description="followers / connections")
    health: str = Field("connected", description=f"one of: {', '.join(NETWORK_HEALTH)}")


class AdvocateIn(Request):
    display_name: str = Field(min_length=1, max_length=120)
    team: str | None = Field(None, max_length=120)
    department: str | None = Field(None, max_length=120)
    location: str | None = Field(None, max_length=120)
    language: str | None = Field(None, max_length=16, description="BCP 47 tag, e.g. en or fr-CA")
    consents: Consents = Field(default_factory=Consents)
    networks: list[ConnectedNetwork] = Field(default_factory=list, max_length=20)


class AdvocateOut(BaseModel):
    id: str
    display_name: str
    team: str | None = None
    department: str | None = None
    location: str | None = None
    language: str | None = None
    consents: Consents
    networks: list[ConnectedNetwork]
    potential_reach: int = Field(description="sum of audience sizes of connected networks")
    enrolled_at: datetime
    updated_at: datetime


class AdvocatePage(BaseModel):
    items: list[AdvocateOut]
    next_cursor: str | None


class ShareIn(Request):
    content_id: str = Field(min_length=1, max_length=200)
    network: str = Field(min_length=1, max_length=40, description=f"one of: {NETWORK_NAMES}")
    message: str = Field(min_length=1, max_length=10_000, description="the advocate's own words")
    scheduled_at: datetime | None = Field(
        None, description="when the share goes out (UTC, future); omitted = now"
    )


class ShareOut(BaseModel):
    id: str
    advocate_id: str
    content_id: str
    network: str
    message: str
    code: str
    short_url: str = Field(description="the tracked link to post: <public base URL>/r/<code>")
    target_url: str = Field(description="where the link leads, with UTM parameters")
    status: str = Field(description="pending (scheduled, not yet out) or sent")
    scheduled_at: datetime | None = None
    shared_at: datetime | None = None
    created_at: datetime


class SharePage(BaseModel):
    items: list[ShareOut]
    next_cursor: str | None


class ShareableItem(BaseModel):
    content_id: str
    content_type: str
    title: str
    url: str
    tags: list[str]
    language: str | None = None
    networks: list[str] = Field(description="networks with suggested posts")
    expires_at: datetime | None = None


class ShareablePage(BaseModel):
    items: list[ShareableItem]
    next_cursor: str | None
