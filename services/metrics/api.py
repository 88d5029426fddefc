"""Routes of the metrics service: parse, authorise, call the service, shape the response.

Every report answers JSON by default and CSV when asked with `Accept: text/csv`.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from services.metrics.domain import to_csv
from services.metrics.schemas import (
    ApiKeyIn,
    ApiKeyOut,
    ApiKeyPage,
    ConversionIn,
    ConversionOut,
    DictionaryOut,
    FunnelOut,
    GoalIn,
    GoalOut,
    GoalPage,
    MeStatsOut,
    MetricsSettingsIn,
    MetricsSettingsOut,
    NewApiKeyOut,
    ProgramOut,
    ResponseIn,
    ResponseOut,
    SurveyIn,
    SurveyOut,
    SurveyPage,
    SurveyResultsOut,
    TimeseriesOut,
)
from services.metrics.service import MetricsService
from shared.auth import ANY_MEMBER, API_KEY_ROLE, Principal, Role, require

router = APIRouter(prefix="/v1")

Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
Manager = Annotated[Principal, Depends(require(Role.ADMIN, Role.EDITOR))]
Member = Annotated[Principal, Depends(require(*ANY_MEMBER))]
Integration = Annotated[Principal, Depends(require(API_KEY_ROLE, Role.ADMIN))]
Anyone = Annotated[Principal, Depends(require(API_KEY_ROLE, *ANY_MEMBER))]
Cursor = Annotated[str | None, Query(max_length=500, description="from the previous page's next_cursor")]
Limit = Annotated[int, Query(ge=1, le=200)]
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/csv": {"schema": {"type": "string"}}},
        "description": "JSON, or CSV on Accept: text/csv",
    }
}


async def service_of(request: Request) -> MetricsService:
    service: MetricsService = request.app.state.service
    return service


Service = Annotated[MetricsService, Depends(service_of)]


def wants_csv(request: Request) -> bool:
    return "text/csv" in request.headers.get("accept", "")


def csv_response(rows: list[dict[str, Any]], name: str) -> Response:
    return Response(
        to_csv(rows),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


async def dimension_filters(
    advocate: Annotated[str | None, Query(max_length=200)] = None,
    content: Annotated[str | None, Query(max_length=200)] = None,
    team: Annotated[str | None, Query(max_length=200)] = None,
    network: Annotated[str | None, Query(max_length=50)] = None,
    tag: Annotated[str | None, Query(max_length=100)] = None,
) -> dict[str, str]:
    given = {"advocate": advocate, "content": content, "team": team, "network": network, "tag": tag}
    return {name: value for name, value in given.items() if value is not None}


Filters = Annotated[dict[str, str], Depends(dimension_filters)]
From = Annotated[date, Query(alias="from", description="first UTC day, inclusive")]
To = Annotated[date, Query(description="last UTC day, inclusive")]


# --- conversions ------------------------------------------------------------------------------


@router.post(
    "/conversions",
    response_model=ConversionOut,
    tags=["conversions"],
    summary="Record a lead or a sale",
    description=(
        "For websites and CRMs, with an organisation API key (`X-API-Key`) or an admin token. "
        "Attributed to the click, share, advocate and content when the click id is known and within "
        "the attribution window; otherwise accepted as unattributed (`attributed: false`, `reason`). "
        "The same customer and type counts once (`duplicate: true`). Send an `Idempotency-Key`."
    ),
)
async def record_conversion(
    body: ConversionIn,
    principal: Integration,
    service: Service,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> dict[str, Any]:
    return await service.record_conversion(principal, body, idempotency_key)


# --- API keys ---------------------------------------------------------------------------------


@router.post(
    "/api-keys",
    response_model=NewApiKeyOut,
    status_code=201,
    tags=["api-keys"],
    summary="Create an API key",
    description="The key is shown in this response only; it is stored hashed.",
)
async def create_api_key(body: ApiKeyIn, principal: Admin, service: Service) -> dict[str, Any]:
    return await service.create_api_key(principal, body.name)


@router.get(
    "/api-keys", response_model=ApiKeyPage, tags=["api-keys"], summary="List the organisation's API keys"
)
async def list_api_keys(principal: Admin, service: Service, cursor: Cursor = None, limit: Limit = 50) -> Any:
    return await service.list_api_keys(principal, cursor, limit)


@router.delete(
    "/api-keys/{key_id}",
    response_model=ApiKeyOut,
    tags=["api-keys"],
    summary="Revoke an API key",
    description="Calls with a revoked key are refused with 401.",
)
async def revoke_api_key(key_id: str, principal: Admin, service: Service) -> dict[str, Any]:
    return await service.revoke_api_key(principal, key_id)


# --- analytics --------------------------------------------------------------------------------


@router.get(
    "/funnel",
    response_model=FunnelOut,
    tags=["analytics"],
    responses=CSV_RESPONSE,
    summary="The funnel from shares to revenue",
    description=(
        "Rows grouped by day, week (key: the Monday), month, advocate, content, team, network or tag; "
        "at most one filter (advocate, content, team, network, tag). A time grouping can be filtered by "
        "any dimension; a dimension grouping only by its own dimension. Bot and self clicks are "
        "counted apart. The EMV formula with the organisation's CPC and CPM comes with the answer."
    ),
)
async def funnel(
    request: Request,
    principal: Manager,
    service: Service,
    from_: From,
    to: To,
    filters: Filters,
    group_by: Annotated[str, Query(max_length=20)] = "day",
) -> Any:
    result = await service.funnel(principal, from_, to, group_by, filters)
    if wants_csv(request):
        return csv_response(result["rows"], "funnel")
    return result


@router.get(
    "/timeseries",
    response_model=TimeseriesOut,
    tags=["analytics"],
    responses=CSV_RESPONSE,
    summary="One metric over time",
    description="Every period of the range, zeros included.",
)
async def timeseries(
    request: Request,
    principal: Manager,
    service: Service,
    from_: From,
    to: To,
    filters: Filters,
    metric: Annotated[str, Query(max_length=40)] = "clicks",
    interval: Annotated[str, Query(max_length=10)] = "day",
) -> Any:
    result = await service.timeseries(principal, metric, from_, to, interval, filters)
    if wants_csv(request):
        return csv_response(result["points"], "timeseries")
    return result


@router.get(
    "/me/stats",
    response_model=MeStatsOut,
    tags=["analytics"],
    responses=CSV_RESPONSE,
    summary="My reach, clicks and leads",
    description="The caller's own figures over the last `days`, the trend against the days before, "
    "and a daily breakdown (CSV: the daily rows).",
)
async def me_stats(
    request: Request, principal: Member, service: Service, days: Annotated[int, Query(ge=1, le=365)] = 30
) -> Any:
    result = await service.me_stats(principal, days)
    if wants_csv(request):
        return csv_response(result["daily"], "my-stats")
    return result


@router.get(
    "/program",
    response_model=ProgramOut,
    tags=["analytics"],
    responses=CSV_RESPONSE,
    summary="Enrolment, activity and training",
    description="Active advocates (shared in the last "
    "30 days) over enrolled, and training completion, overall and per team (CSV: per team).",
)
async def program(request: Request, principal: Manager, service: Service) -> Any:
    result = await service.program(principal.org)
    if wants_csv(request):
        return csv_response(result["by_team"], "program")
    return result


@router.get(
    "/metrics/dictionary",
    response_model=DictionaryOut,
    tags=["analytics"],
    summary="Every metric's name, definition and formula",
)
async def dictionary(principal: Anyone, service: Service) -> dict[str, Any]:
    return service.dictionary()


@router.get(
    "/metrics/settings",
    response_model=MetricsSettingsOut,
    tags=["analytics"],
    summary="CPC, CPM and attribution window of the organisation",
)
async def get_settings(principal: Manager, service: Service) -> dict[str, Any]:
    return await service.get_settings(principal)


@router.put(
    "/metrics/settings",
    response_model=MetricsSettingsOut,
    tags=["analytics"],
    summary="Set CPC and CPM for earned media value",
    description="The attribution window comes from the organisation settings (content service).",
)
async def put_settings(body: MetricsSettingsIn, principal: Admin, service: Service) -> dict[str, Any]:
    return await service.put_settings(principal, body)


# --- goals ------------------------------------------------------------------------------------


@router.post(
    "/goals",
    response_model=GoalOut,
    status_code=201,
    tags=["goals"],
    summary="Set a program goal",
    description="A target on any metric over 1, 3 or 6 months from today, or between two dates.",
)
async def create_goal(body: GoalIn, principal: Manager, service: Service) -> dict[str, Any]:
    return await service.create_goal(principal, body)


@router.get(
    "/goals",
    response_model=GoalPage,
    tags=["goals"],
    responses=CSV_RESPONSE,
    summary="Goals with progress, forecast and status",
)
async def list_goals(
    request: Request, principal: Manager, service: Service, cursor: Cursor = None, limit: Limit = 50
) -> Any:
    result = await service.list_goals(principal, cursor, limit)
    if wants_csv(request):
        return csv_response(
            [{k: v for k, v in g.items() if k != "history"} for g in result["items"]], "goals"
        )
    return result


@router.get(
    "/goals/{goal_id}",
    response_model=GoalOut,
    tags=["goals"],
    summary="A goal with its daily history",
    description="history: one snapshot per day.",
)
async def get_goal(goal_id: str, principal: Manager, service: Service) -> dict[str, Any]:
    return await service.get_goal(principal, goal_id)


@router.delete(
    "/goals/{goal_id}", status_code=204, response_class=Response, tags=["goals"], summary="Delete a goal"
)
async def delete_goal(goal_id: str, principal: Manager, service: Service) -> Response:
    await service.delete_goal(principal, goal_id)
    return Response(status_code=204)


# --- surveys ----------------------------------------------------------------------------------


@router.post(
    "/surveys",
    response_model=SurveyOut,
    status_code=201,
    tags=["surveys"],
    summary="Create a survey",
    description="eNPS or pulse surveys for employees, or a customer survey.",
)
async def create_survey(body: SurveyIn, principal: Manager, service: Service) -> dict[str, Any]:
    return await service.create_survey(principal, body)


@router.get("/surveys", response_model=SurveyPage, tags=["surveys"], summary="List surveys")
async def list_surveys(principal: Member, service: Service, cursor: Cursor = None, limit: Limit = 50) -> Any:
    return await service.list_surveys(principal, cursor, limit)


@router.post(
    "/surveys/{survey_id}/responses",
    response_model=ResponseOut,
    status_code=201,
    tags=["surveys"],
    summary="Answer a survey",
    description="Employees answer employee surveys once each, anonymously; customer answers come "
    "with an API key (one per customer_id).",
)
async def respond(survey_id: str, body: ResponseIn, principal: Anyone, service: Service) -> dict[str, Any]:
    return await service.respond(principal, survey_id, body)


@router.get(
    "/surveys/{survey_id}/results",
    response_model=SurveyResultsOut,
    tags=["surveys"],
    responses=CSV_RESPONSE,
    summary="NPS, averages and comments of a survey",
)
async def survey_results(survey_id: str, request: Request, principal: Manager, service: Service) -> Any:
    result = await service.survey_results(principal, survey_id)
    if wants_csv(request):
        return csv_response(result["questions"], "survey")
    return result
