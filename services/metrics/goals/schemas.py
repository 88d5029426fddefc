"""HTTP models of the program goals."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field

from shared.clock import RequestDay
from shared.fields import Line
from shared.pagination import Page
from shared.schemas import RequestBody, ResponseBody

GoalMetric = Literal[
    "shares",
    "reach",
    "clicks",
    "unique_clicks",
    "leads",
    "sales",
    "applications",
    "hires",
    "emv",
    "ctr",
    "conversion_rate",
    "application_rate",
    "active_advocates",
    "enrolled",
    "active_ratio",
    "training_completion",
    "nps",
    "average",
]


class GoalIn(RequestBody):
    name: Line = Field(min_length=1, max_length=200)
    metric: GoalMetric
    target: float = Field(gt=0)
    horizon_months: Literal[1, 3, 6] | None = Field(None, description="from today; or give starts_on/ends_on")
    starts_on: RequestDay | None = None
    ends_on: RequestDay | None = None
    filter_dim: Literal["advocate", "content", "team", "network", "tag"] | None = None
    filter_key: Line | None = Field(None, max_length=200)
    survey_id: Line | None = Field(None, max_length=100, description="for nps and average")
    question_id: Line | None = Field(None, max_length=40)


class SnapshotOut(ResponseBody):
    date: str
    value: float
    enrolled: int


class GoalOut(ResponseBody):
    goal_id: str
    name: str
    metric: str
    target: float
    starts_on: date
    ends_on: date
    filter_dim: str | None
    filter_key: str | None
    survey_id: str | None
    question_id: str | None
    value: float
    progress: float
    forecast: float
    status: Literal["on_track", "at_risk", "behind", "achieved"]
    history: list[SnapshotOut]


class GoalPage(Page[GoalOut]):
    pass
