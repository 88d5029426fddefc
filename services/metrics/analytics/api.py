"""Routes of the analytics reports. Every report answers JSON by default and CSV when asked with
`Accept: text/csv`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from services.metrics.analytics.domain import FUNNEL_METRICS, GROUP_BYS, REVENUE_METRIC, TIME_GROUPS
from services.metrics.analytics.schemas import DictionaryOut, FunnelOut, MeStatsOut, ProgramOut, TimeseriesOut
from services.metrics.web import (
    CSV_RESPONSE,
    Anyone,
    Manager,
    Member,
    Modules,
    json_or_csv,
)
from shared.clock import RequestDay
from shared.dependencies import on_loop

router = APIRouter(prefix="/v1", tags=["analytics"])

# What the reports take, in the document for a generated client; the domain checks the same
# values and says what is wrong in its own words.
METRIC_PATTERN = f"^({'|'.join(FUNNEL_METRICS)}|{REVENUE_METRIC.pattern})$"


async def dimension_filters(
    advocate: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    content: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    team: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    network: Annotated[str | None, Query(min_length=1, max_length=50)] = None,
    tag: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
) -> dict[str, str]:
    given = {"advocate": advocate, "content": content, "team": team, "network": network, "tag": tag}
    return {name: value for name, value in given.items() if value is not None}


@dataclass(frozen=True)
class Report:
    """What the funnel and the time series both report on: the days, in the organisation's time
    zone, and at most one dimension filter."""

    from_: Annotated[
        RequestDay, Query(alias="from", description="first day, inclusive, in the org's time zone")
    ]
    to: Annotated[RequestDay, Query(description="last day, inclusive, in the org's time zone")]
    filters: Annotated[dict[str, str], Depends(dimension_filters)]


Asked = Annotated[Report, Depends(on_loop(Report))]


@router.get(
    "/funnel",
    response_model=FunnelOut,
    responses=CSV_RESPONSE,
    summary="The funnel from shares to revenue",
)
async def funnel(
    request: Request,
    principal: Manager,
    modules: Modules,
    report: Asked,
    group_by: Annotated[str, Query(max_length=20, json_schema_extra={"enum": list(GROUP_BYS)})] = "day",
) -> Any:
    """Rows grouped by day, week (key: the Monday), month, advocate, content, team, network or tag; at most
    one filter (advocate, content, team, network, tag). A time grouping can be filtered by any dimension; a
    dimension grouping only by its own dimension. Bot and self clicks are counted apart. The EMV formula
    with the organisation's CPC and CPM comes with the answer. Over advocate, content, team or network,
    `unassigned` holds what no row does (a sale credited to no share), so that a breakdown adds up.
    """
    result = await modules.analytics.funnel(principal, report.from_, report.to, group_by, report.filters)
    # In CSV the unassigned row comes last, so that the rows add up to the totals as a
    # spreadsheet sums them.
    unassigned = [result["unassigned"]] if result["unassigned"] else []
    return json_or_csv(request, result, [*result["rows"], *unassigned], "funnel")


@router.get(
    "/timeseries",
    response_model=TimeseriesOut,
    responses=CSV_RESPONSE,
    summary="One metric over time",
)
async def timeseries(
    request: Request,
    principal: Manager,
    modules: Modules,
    report: Asked,
    metric: Annotated[str, Query(max_length=40, json_schema_extra={"pattern": METRIC_PATTERN})] = "clicks",
    interval: Annotated[str, Query(max_length=10, json_schema_extra={"enum": list(TIME_GROUPS)})] = "day",
) -> Any:
    """Every period of the range, zeros included."""
    result = await modules.analytics.timeseries(
        principal, metric, report.from_, report.to, interval, report.filters
    )
    return json_or_csv(request, result, result["points"], "timeseries")


@router.get(
    "/me/stats",
    response_model=MeStatsOut,
    responses=CSV_RESPONSE,
    summary="My reach, clicks and leads",
)
async def me_stats(
    request: Request, principal: Member, modules: Modules, days: Annotated[int, Query(ge=1, le=365)] = 30
) -> Any:
    """The caller's own figures over the last `days`, the trend against the days before, and a daily breakdown
    (CSV: the daily rows).
    """
    result = await modules.analytics.me_stats(principal, days)
    return json_or_csv(request, result, result["daily"], "my-stats")


@router.get(
    "/program",
    response_model=ProgramOut,
    responses=CSV_RESPONSE,
    summary="Enrolment, activity and training",
)
async def program_overview(request: Request, principal: Manager, modules: Modules) -> Any:
    """Active advocates (shared in the last 30 days) over enrolled, and training completion, overall and per
    team (CSV: per team).
    """
    result = await modules.analytics.program(principal.org)
    return json_or_csv(request, result, result["by_team"], "program")


@router.get(
    "/metrics/dictionary",
    response_model=DictionaryOut,
    summary="Every metric's name, definition and formula",
)
async def metrics_dictionary(principal: Anyone, modules: Modules) -> dict[str, Any]:
    return modules.analytics.dictionary()
