"""HTTP models of the surveys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from shared.fields import NOT_BOOLEAN, Line, Text
from shared.pagination import Page
from shared.schemas import RequestBody, ResponseBody

QUESTION_ID_PATTERN = r"^[a-z0-9_]{1,40}$"


def _answer_kind(value: Any) -> str:
    return "text" if isinstance(value, str) else "number"


# A score (nps, rating) or a comment (text), each refused with its own reason: `true` is not a
# score of 1, and a comment holds no control character.
Answer = Annotated[
    Annotated[int, NOT_BOOLEAN, Tag("number")] | Annotated[Text, Tag("text")], Discriminator(_answer_kind)
]


class QuestionIn(RequestBody):
    id: str = Field(pattern=QUESTION_ID_PATTERN)
    text: Text = Field(min_length=1, max_length=500)
    type: Literal["nps", "rating", "text"] = Field(description="nps: 0-10; rating: 1-5; text: a comment")


class SurveyIn(RequestBody):
    kind: Literal["enps", "pulse", "customer"]
    title: Line = Field(min_length=1, max_length=200)
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
    answers: dict[str, Answer] = Field(max_length=30)
    customer_id: Line | None = Field(None, max_length=200, description="customer surveys: one answer each")


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
