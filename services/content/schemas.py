"""HTTP request and response models of the content service."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from services.content.domain import Status

Network = Literal["linkedin", "x", "facebook", "xing", "instagram", "threads", "bluesky", "mastodon"]
ContentType = Literal["article", "video", "image", "job_opening", "event", "post"]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", max_length=35)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=50)]
Url = Annotated[str, StringConstraints(min_length=1, max_length=2048)]

# The longest caption any network allows (facebook); each network's own limit is checked per post.
MAX_CAPTION = 63206


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SuggestedPostIn(Request):
    network: Network
    language: Language | None = Field(None, description="defaults to the item's language")
    text: str = Field(min_length=1, max_length=MAX_CAPTION, description="within the network's length limit")


class AudienceModel(Request):
    """Empty lists mean everyone; a caller must match every non-empty list."""

    teams: list[Name] = Field(default_factory=list, max_length=200)
    departments: list[Name] = Field(default_factory=list, max_length=200)
    locations: list[Name] = Field(default_factory=list, max_length=200)


class ContentCreate(Request):
    type: ContentType
    title: str = Field(min_length=1, max_length=300)
    url: Url = Field(description="canonical URL, http or https")
    summary: str | None = Field(None, max_length=5000)
    image_url: Url | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=30)
    language: Language | None = None
    audience: AudienceModel = Field(default_factory=AudienceModel)
    starts_at: AwareDatetime | None = None
    expires_at: AwareDatetime | None = None
    suggested_posts: list[SuggestedPostIn] = Field(default_factory=list, max_length=50)


class ContentPatch(Request):
    """Only the fields sent change; send null to clear an optional field."""

    type: ContentType | None = None
    title: str | None = Field(None, min_length=1, max_length=300)
    url: Url | None = None
    summary: str | None = Field(None, max_length=5000)
    image_url: Url | None = None
    tags: list[Tag] | None = Field(None, max_length=30)
    language: Language | None = None
    audience: AudienceModel | None = None
    starts_at: AwareDatetime | None = None
    expires_at: AwareDatetime | None = None
    suggested_posts: list[SuggestedPostIn] | None = Field(None, max_length=50)


class RejectRequest(Request):
    reason: str = Field(min_length=1, max_length=2000, description="shown to the advocate who submitted it")


class SuggestedPostOut(BaseModel):
    network: str
    language: str | None
    text: str


class AudienceOut(BaseModel):
    teams: list[str]
    departments: list[str]
    locations: list[str]


class ContentOut(BaseModel):
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
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    rejection_reason: str | None
    archive_reason: str | None = Field(description="'manual' or 'expired' once archived")
    share_count: int = Field(description="how many times advocates shared it")


class ContentPage(BaseModel):
    items: list[ContentOut]
    next_cursor: str | None


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
    sharing_hours_start: int | None = Field(None, ge=0, le=23, description="UTC hour sharing opens")
    sharing_hours_end: int | None = Field(None, ge=1, le=24, description="UTC hour sharing closes")
    fallback_url: Url | None = None
    unique_click_window_hours: int = Field(24, ge=1, le=24 * 30)
    attribution_window_days: int = Field(30, ge=1, le=365)


class PolicyCreate(Request):
    title: str = Field(min_length=1, max_length=300)
    body: str = Field(min_length=1, max_length=100_000)


class PolicyOut(BaseModel):
    version: int
    title: str
    body: str
    published_at: datetime


class CurrentPolicyOut(BaseModel):
    policy: PolicyOut | None = Field(description="null until an admin publishes one")
    acknowledged_at: datetime | None = Field(description="when the caller acknowledged this version")


class PolicyPage(BaseModel):
    items: list[PolicyOut]
    next_cursor: str | None


class AcknowledgeRequest(Request):
    version: int = Field(ge=1, description="must be the current version")


class ModuleIn(Request):
    id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="kept across edits so progress stays; generated when absent",
    )
    title: str = Field(min_length=1, max_length=300)
    body: str | None = Field(None, max_length=50_000)
    url: Url | None = None
    minutes: int = Field(5, ge=1, le=600)


class CourseIn(Request):
    title: str = Field(min_length=1, max_length=300)
    description: str | None = Field(None, max_length=5000)
    modules: list[ModuleIn] = Field(min_length=1, max_length=100)


class ModuleOut(BaseModel):
    id: str
    title: str
    body: str | None
    url: str | None
    minutes: int


class CourseOut(BaseModel):
    id: str
    title: str
    description: str | None
    modules: list[ModuleOut]
    total_minutes: int
    created_at: datetime
    updated_at: datetime


class CoursePage(BaseModel):
    items: list[CourseOut]
    next_cursor: str | None


class ProgressOut(BaseModel):
    course_id: str
    advocate_id: str
    completed_module_ids: list[str]
    completed_at: datetime | None
