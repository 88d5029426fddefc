"""HTTP request and response models of the shares API."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from services.sharing.advocates.schemas import Request
from services.sharing.catalog.domain import ContentView
from services.sharing.shares.domain import Share
from shared.clock import RequestTime
from shared.fields import Line, Text
from shared.networks import Network
from shared.pagination import Page
from shared.schemas import ResponseBody


class ShareIn(Request):
    content_id: Line = Field(min_length=1, max_length=200)
    network: Network  # domain.check_share refuses any other, naming network
    message: Text = Field(min_length=1, max_length=10_000, description="the advocate's own words")
    scheduled_at: RequestTime | None = Field(
        None, description="when the share goes out (UTC, future); omitted = now"
    )


class ShareOut(ResponseBody):
    id: str
    advocate_id: str
    content_id: str
    network: str
    message: str
    code: str
    short_url: str = Field(description="the tracked link to post: <public base URL>/r/<code>")
    target_url: str = Field(description="where the link leads, with UTM parameters")
    status: str = Field(
        description="pending (scheduled, not yet out), sent, or cancelled (its advocate left)"
    )
    scheduled_at: datetime | None = None
    shared_at: datetime | None = None
    created_at: datetime

    @classmethod
    def of(cls, share: Share) -> ShareOut:
        return cls.model_validate(share, from_attributes=True)


class SharePage(Page[ShareOut]):
    pass


class ShareableItem(ResponseBody):
    content_id: str
    content_type: str
    title: str
    url: str
    tags: list[str]
    language: str | None = None
    networks: list[str] = Field(description="networks with suggested posts")
    expires_at: datetime | None = None

    @classmethod
    def of(cls, content: ContentView) -> ShareableItem:
        return cls.model_validate(content, from_attributes=True)


class ShareablePage(Page[ShareableItem]):
    pass
