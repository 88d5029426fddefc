"""HTTP request and response models of the content library."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Query
from pydantic import Field

from services.content.library.domain import Status
from services.content.schemas import ContentType, Language, Name, Network, Tag, Url
from shared.clock import AwareRequestTime, RequestTime
from shared.fields import Line, Text
from shared.pagination import Page
from shared.schemas import RequestBody, ResponseBody


@dataclass(frozen=True)
class ContentFilters:
    """The library's filters, read from the query string."""

    status: Annotated[Status | None, Query(description="editors and admins only, except published")] = None
    mine: Annotated[bool, Query(description="only items the caller submitted, in any status")] = False
    tag: Annotated[str | None, Query(min_length=1, max_length=50)] = None
    content_type: Annotated[ContentType | None, Query(alias="type")] = None
    language: Annotated[str | None, Query(min_length=1, max_length=35)] = None
    network: Annotated[Network | None, Query(description="items with a suggested post for it")] = None
    text: Annotated[
        str | None, Query(alias="q", max_length=200, description="text in the title or summary")
    ] = None
    since: Annotated[RequestTime | None, Query(description="only items published at or after this time")] = (
        None
    )


# The longest caption any network allows (facebook); each network's own limit is checked per post.
MAX_CAPTION = 63206


class SuggestedPostIn(RequestBody):
    network: Network
    language: Language | None = Field(None, description="defaults to the item's language")
    text: Text = Field(min_length=1, max_length=MAX_CAPTION, description="within the network's length limit")


class AudienceModel(RequestBody):
    """Empty lists mean everyone; a caller must match every non-empty list."""

    teams: list[Name] = Field(default_factory=list, max_length=200)
    departments: list[Name] = Field(default_factory=list, max_length=200)
    locations: list[Name] = Field(default_factory=list, max_length=200)


class ContentCreate(RequestBody):
    type: ContentType
    title: Line = Field(min_length=1, max_length=300)
    url: Url = Field(description="canonical URL, http or https")
    summary: Text | None = Field(None, max_length=5000)
    image_url: Url | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=30)
    language: Language | None = None
    audience: AudienceModel = Field(default_factory=AudienceModel)
    starts_at: AwareRequestTime | None = None
    expires_at: AwareRequestTime | None = None
    suggested_posts: list[SuggestedPostIn] = Field(default_factory=list, max_length=50)


class ContentPatch(RequestBody):
    """Only the fields sent change; send null to clear an optional field."""

    type: ContentType | None = None
    title: Line | None = Field(None, min_length=1, max_length=300)
    url: Url | None = None
    summary: Text | None = Field(None, max_length=5000)
    image_url: Url | None = None
    tags: list[Tag] | None = Field(None, max_length=30)
    language: Language | None = None
    audience: AudienceModel | None = None
    starts_at: AwareRequestTime | None = None
    expires_at: AwareRequestTime | None = None
    suggested_posts: list[SuggestedPostIn] | None = Field(None, max_length=50)


class RejectRequest(RequestBody):
    reason: Text = Field(min_length=1, max_length=2000, description="shown to the advocate who submitted it")


class SuggestedPostOut(ResponseBody):
    network: str
    language: str | None
    text: str


class AudienceOut(ResponseBody):
    teams: list[str]
    departments: list[str]
    locations: list[str]


class ContentOut(ResponseBody):
    id: str
    status: Status
    type: str
    title: str
    url: str
    summary: str | None
    image_url: str | None
    tags: list[str]
    language: str | None
    audience: AudienceOut
    starts_at: datetime | None
    expires_at: datetime | None
    suggested_posts: list[SuggestedPostOut]
    networks: list[str]
    author_advocate_id: str | None = Field(description="null when the brand wrote it")
    author_display_name: str | None = Field(
        None, description="the author's name, when they let colleagues see it (else null)"
    )
    author_avatar_url: str | None = Field(None, description="the author's picture, likewise")
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    rejection_reason: str | None
    archive_reason: str | None = Field(description="'manual' or 'expired' once archived")
    share_count: int = Field(description="how many times advocates shared it")


class ContentPage(Page[ContentOut]):
    pass
