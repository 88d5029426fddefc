"""HTTP models of kudos and personal goals."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, model_validator

from services.recognition.engagement.domain import GoalKind
from shared.fields import Line, Text
from shared.pagination import Page
from shared.schemas import RequestBody, ResponseBody

# --- kudos -------------------------------------------------------------------------------------


class KudosIn(RequestBody):
    to: Line = Field(min_length=1, max_length=200, description="the colleague's advocate id")
    message: Text = Field(min_length=1, max_length=500)


class KudosOut(ResponseBody):
    kudos_id: str
    from_advocate_id: str | None
    from_display_name: str | None = Field(
        None, description="the giver's name, when they let colleagues see it"
    )
    from_avatar_url: str | None = None
    to: str
    to_display_name: str | None = Field(
        None, description="the receiver's name, when they let colleagues see it"
    )
    to_avatar_url: str | None = None
    message: str
    created_at: datetime
    allowance_left: int | None = None


class KudosPage(Page[KudosOut]):
    pass


# --- goals -------------------------------------------------------------------------------------


class PersonalGoalIn(RequestBody):
    kind: GoalKind
    target: int = Field(ge=1, le=1_000_000_000, description="audience size, posts, 1 for a course, or a rank")
    course_id: Line | None = Field(None, max_length=200)
    tag: Line | None = Field(None, max_length=100)

    @model_validator(mode="after")
    def _needs(self) -> PersonalGoalIn:
        if self.kind is GoalKind.COURSE and not self.course_id:
            raise ValueError("a course goal needs course_id")
        if self.kind is GoalKind.TOP_ON_TAG and not self.tag:
            raise ValueError("a top_on_tag goal needs tag")
        return self


class PersonalGoalOut(ResponseBody):
    goal_id: str
    kind: GoalKind
    target: int
    course_id: str | None = None
    tag: str | None = None
    current: int
    achieved: bool
    created_at: datetime


class PersonalGoalPage(Page[PersonalGoalOut]):
    pass
