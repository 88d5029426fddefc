"""HTTP request and response models of the metrics service."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ID_PATTERN = r"^[A-Za-z0-9_\-:.@]{1,200}$"
QUESTION_ID_PATTERN = r"^[a-z0-9_]{1,40}$"


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- conversions ------------------------------------------------------------------------------


class ConversionIn(Request):
    type: Literal["lead", "sale"]
    click_id: str | None = Field(None, max_length=200, description="the click id from the landing URL")
    customer_id: str = Field(min_length=1, max_length=200, description="the integrator's id of the customer")
    amount: str | None = Field(
        None,
        max_length=40,
        description="sales only: a decimal string, e.g. '129.90', with no more decimals than the currency's"
        " minor unit (2 for EUR, 0 for JPY)",
    )
    currency: str | None = Field(None, max_length=3, description="sales only: ISO 4217 code, e.g. EUR")


class CreditOut(BaseModel):
    advocate_id: str
    share_id: str
    last_touch: float
    linear: float


class ConversionOut(BaseModel):
    conversion_id: str
    type: str
    customer_id: str
    attributed: bool
    reason: str | None = Field(None, description="why the conversion is unattributed")
    click_id: str | None
    share_id: str | None
    advocate_id: str | None
    content_id: str | None
    credits: list[CreditOut]
    amount: str | None
    currency: str | None
    converted_at: datetime
    duplicate: bool = Field(description="the same customer and type was already recorded; counted once")


# --- API keys ---------------------------------------------------------------------------------


class ApiKeyIn(Request):
    name: str = Field(min_length=1, max_length=100)


class ApiKeyOut(BaseModel):
    key_id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None = None


class NewApiKeyOut(ApiKeyOut):
    api_key: str = Field(description="shown only in this response; store it now")


class ApiKeyPage(BaseModel):
    items: list[ApiKeyOut]
    next_cursor: str | None


# --- analytics --------------------------------------------------------------------------------


class FunnelRow(BaseModel):
    key: str = Field(description="the period (day, week's Monday, YYYY-MM) or the dimension value")
    shares: int
    reach: int
    clicks: int
    unique_clicks: int
    bot_clicks: int
    self_clicks: int
    leads: int
    sales: int
    revenue: dict[str, str] = Field(description="per ISO 4217 currency, decimal strings")
    ctr: float
    conversion_rate: float
    emv: float


class EmvOut(BaseModel):
    formula: str
    cpc: str
    cpm: str
    currency: str


class FunnelOut(BaseModel):
    from_: date = Field(alias="from")
    to: date
    group_by: str
    filters: dict[str, str]
    rows: list[FunnelRow]
    totals: FunnelRow
    emv: EmvOut

    model_config = ConfigDict(populate_by_name=True)


class Point(BaseModel):
    period: str
    value: float


class TimeseriesOut(BaseModel):
    metric: str
    interval: str
    filters: dict[str, str]
    points: list[Point]


class Trend(BaseModel):
    current: float
    previous: float
    change: float | None = Field(
        description="relative change, current / previous - 1; none when previous is 0"
    )


class MeStatsOut(BaseModel):
    advocate_id: str
    days: int
    reach: int
    shares: int
    clicks: int
    unique_clicks: int
    leads: int
    sales: int
    trend: dict[str, Trend]
    daily: list[FunnelRow]


class TeamProgram(BaseModel):
    team: str
    enrolled: int
    active: int
    active_ratio: float
    trained: int
    training_completion: float


class ProgramOut(BaseModel):
    enrolled: int
    active: int
    active_ratio: float = Field(description="advocates who shared in the last 30 days / enrolled")
    trained: int
    training_completion: float = Field(description="enrolled advocates with a completed course / enrolled")
    by_team: list[TeamProgram]


class MetricDefinition(BaseModel):
    name: str
    definition: str
    formula: str
    unit: str


class DictionaryOut(BaseModel):
    items: list[MetricDefinition]


class MetricsSettingsIn(Request):
    cpc: str = Field(max_length=20, description="cost per click, decimal string")
    cpm: str = Field(max_length=20, description="cost per thousand impressions, decimal string")
    currency: str = Field(min_length=3, max_length=3)


class MetricsSettingsOut(BaseModel):
    cpc: str
    cpm: str
    currency: str
    attribution_window_days: int
    emv_formula: str


# --- goals ------------------------------------------------------------------------------------

GoalMetric = Literal[
    "shares",
    "reach",
    "clicks",
    "unique_clicks",
    "leads",
    "sales",
    "emv",
    "ctr",
    "conversion_rate",
    "active_advocates",
    "enrolled",
    "active_ratio",
    "training_completion",
    "nps",
    "average",
]


class GoalIn(Request):
    name: str = Field(min_length=1, max_length=200)
    metric: GoalMetric
    target: float = Field(gt=0)
    horizon_months: Literal[1, 3, 6] | None = Field(None, description="from today; or give starts_on/ends_on")
    starts_on: date | None = None
    ends_on: date | None = None
    filter_dim: Literal["advocate", "content", "team", "network", "tag"] | None = None
    filter_key: str | None = Field(None, max_length=200)
    survey_id: str | None = Field(None, max_length=100, description="for nps and average")
    question_id: str | None = Field(None, max_length=40)


class SnapshotOut(BaseModel):
    date: str
    value: float
    enrolled: int


class GoalOut(BaseModel):
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


class GoalPage(BaseModel):
    items: list[GoalOut]
    next_cursor: str | None


# --- surveys ----------------------------------------------------------------------------------


class QuestionIn(Request):
    id: str = Field(pattern=QUESTION_ID_PATTERN)
    text: str = Field(min_length=1, max_length=500)
    type: Literal["nps", "rating", "text"] = Field(description="nps: 0-10; rating: 1-5; text: a comment")


class SurveyIn(Request):
    kind: Literal["enps", "pulse", "customer"]
    title: str = Field(min_length=1, max_length=200)
    questions: list[QuestionIn] = Field(min_length=1, max_length=30)


class SurveyOut(BaseModel):
    survey_id: str
    kind: str
    title: str
    questions: list[dict[str, str]]
    created_at: datetime


class SurveyPage(BaseModel):
    items: list[SurveyOut]
    next_cursor: str | None


class ResponseIn(Request):
    answers: dict[str, int | str] = Field(max_length=30)
    customer_id: str | None = Field(None, max_length=200, description="customer surveys: one answer each")


class ResponseOut(BaseModel):
    survey_id: str
    accepted: bool


class QuestionResult(BaseModel):
    id: str
    text: str
    type: str
    count: int
    nps: float | None = None
    average: float | None = None
    comments: list[str] = Field(default_factory=list)


class SurveyResultsOut(BaseModel):
    survey_id: str
    kind: str
    responses: int
    questions: list[QuestionResult]
