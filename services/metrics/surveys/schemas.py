"""HTTP models of the surveys."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.pagination import Page
from shared.schemas import RequestBody, ResponseBody

QUESTION_ID_PATTERN = r"^[a-z0-9_]{1,40}$"


class QuestionIn(RequestBody):
    id: str = Field(pattern=QUESTION_ID_PATTERN)
    text: str = Field(min_length=1, max_length=500)
    type: Literal["nps", "rating", "text"] = Field(description="nps: 0-10; rating: 1-5; text: a comment")


class SurveyIn(RequestBody):
    kind: Literal["enps", "pulse", "customer"]
    title: str = Field(min_length=1, max_length=200)
    questions: list[QuestionIn] = Field(min_length=1, max_length=30)


class SurveyOut(ResponseBody):
    survey_id: str
    kind: str
    title: str
    questions: list[dict[str, str]]
    created_at: datetime


class SurveyPage(Page[SurveyOut]):
    pass


class ResponseIn(RequestBody):
    answers: dict[str, int | str] = Field(max_length=30)
    customer_id: str | None = Field(None, max_length=200, description="customer surveys: one answer each")


class ResponseOut(ResponseBody):
    survey_id: str
    accepted: bool


class QuestionResult(ResponseBody):
    id: str
    text: str
    type: str
    count: int
    nps: float | None = None
    average: float | None = None
    comments: list[str] = Field(default_factory=list)


class SurveyResultsOut(ResponseBody):
    survey_id: str
    kind: str
    responses: int
    withheld: bool = Field(
        False, description="an employee survey below min_responses: counts only, no scores or comments"
    )
    min_responses: int | None = Field(
        None, description="employee surveys: answers needed before results show"
    )
    questions: list[QuestionResult]
