"""HTTP models of the analytics reports."""

from __future__ import annotations

from datetime import date

from pydantic import ConfigDict, Field

from shared.schemas import ResponseBody


class FunnelRow(ResponseBody):
    key: str = Field(description="the period (day, week's Monday, YYYY-MM) or the dimension value")
    shares: int
    reach: int
    clicks: int
    unique_clicks: int
    bot_clicks: int
    self_clicks: int
    leads: int
    sales: int
    refunds: int
    applications: int
    hires: int
    revenue: dict[str, str] = Field(description="net of refunds, per ISO 4217 currency, decimal strings")
    refunded: dict[str, str] = Field(description="given back by refunds, per ISO 4217 currency")
    ctr: float
    conversion_rate: float
    application_rate: float
    emv: float


class EmvOut(ResponseBody):
    formula: str
    cpc: str
    cpm: str
    currency: str


class FunnelOut(ResponseBody):
    from_: date = Field(alias="from")
    to: date
    group_by: str
    filters: dict[str, str]
    rows: list[FunnelRow]
    unassigned: FunnelRow | None = Field(
        description="grouped by advocate, content, team or network without a filter: what the totals hold"
        " and no row does (sales credited to no share, advocates with no team, erased advocates), so"
        " that the rows and it add up to the totals; its key is empty, and in CSV it is the last row."
        " Null otherwise: tags overlap, and a time grouping or a filter leaves nothing out"
    )
    totals: FunnelRow
    emv: EmvOut

    model_config = ConfigDict(populate_by_name=True)


class Point(ResponseBody):
    period: str
    value: float


class TimeseriesOut(ResponseBody):
    metric: str
    interval: str
    filters: dict[str, str]
    points: list[Point]


class Trend(ResponseBody):
    current: float
    previous: float
    change: float | None = Field(
        description="relative change, current / previous - 1; none when previous is 0"
    )


class MeStatsOut(ResponseBody):
    advocate_id: str
    days: int
    tracking_consent: bool = Field(
        description="false: you withdrew tracking consent, and your links' clicks since then count for"
        " the content and the organisation but not in these figures, your points or your credit"
    )
    reach: int
    shares: int
    clicks: int
    unique_clicks: int
    leads: int
    sales: int
    trend: dict[str, Trend]
    daily: list[FunnelRow]


class TeamProgram(ResponseBody):
    team: str
    enrolled: int
    active: int
    active_ratio: float
    trained: int
    training_completion: float


class ProgramOut(ResponseBody):
    enrolled: int
    active: int
    active_ratio: float = Field(description="advocates who shared in the last 30 days / enrolled")
    trained: int
    training_completion: float = Field(description="enrolled advocates with a completed course / enrolled")
    by_team: list[TeamProgram]


class MetricDefinition(ResponseBody):
    name: str
    definition: str
    formula: str
    unit: str


class DictionaryOut(ResponseBody):
    items: list[MetricDefinition]
