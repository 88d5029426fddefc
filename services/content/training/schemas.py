"""HTTP models of training: the policy, courses and progress."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from services.content.schemas import Url
from shared.fields import NOT_BOOLEAN, Line, Text
from shared.pagination import Page
from shared.schemas import RequestBody, ResponseBody


class PolicyCreate(RequestBody):
    title: Line = Field(min_length=1, max_length=300)
    body: Text = Field(min_length=1, max_length=100_000)


class PolicyOut(ResponseBody):
    version: int
    title: str
    body: str
    published_at: datetime


class CurrentPolicyOut(ResponseBody):
    policy: PolicyOut | None = Field(description="null until an admin publishes one")
    acknowledged_at: datetime | None = Field(description="when the caller acknowledged this version")


class PolicyPage(Page[PolicyOut]):
    pass


class AcknowledgeRequest(RequestBody):
    version: Annotated[int, Field(ge=1), NOT_BOOLEAN] = Field(description="must be the current version")


class ModuleIn(RequestBody):
    id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="kept across edits so progress stays; generated when absent",
    )
    title: Line = Field(min_length=1, max_length=300)
    body: Text | None = Field(None, max_length=50_000)
    url: Url | None = None
    minutes: Annotated[int, Field(ge=1, le=600), NOT_BOOLEAN] = 5


class CourseIn(RequestBody):
    title: Line = Field(min_length=1, max_length=300)
    description: Text | None = Field(None, max_length=5000)
    modules: list[ModuleIn] = Field(min_length=1, max_length=100)


class ModuleOut(ResponseBody):
    id: str
    title: str
    body: str | None
    url: str | None
    minutes: int


class CourseOut(ResponseBody):
    id: str
    title: str
    description: str | None
    modules: list[ModuleOut]
    total_minutes: int
    created_at: datetime
    updated_at: datetime


class CoursePage(Page[CourseOut]):
    pass


class ProgressOut(ResponseBody):
    course_id: str
    advocate_id: str
    completed_module_ids: list[str]
    completed_at: datetime | None
