"""Routes of the surveys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from services.metrics.surveys.domain import Survey
from services.metrics.surveys.schemas import (
    ResponseIn,
    ResponseOut,
    SurveyIn,
    SurveyOut,
    SurveyPage,
    SurveyResultsOut,
)
from services.metrics.web import (
    CSV_RESPONSE,
    Anyone,
    Cursor,
    Limit,
    Manager,
    Member,
    Modules,
    json_or_csv,
)
from shared.app import links
from shared.idempotency import Idempotent
from shared.ratelimit import RATE_LIMITED_RESPONSE, RateLimited

router = APIRouter(prefix="/v1", tags=["surveys"])


def _survey_out(survey: Survey) -> dict[str, Any]:
    return {
        "survey_id": survey.id,
        "kind": survey.kind,
        "title": survey.title,
        "questions": survey.questions,
        "created_at": survey.created_at,
    }


@router.post(
    "/surveys",
    response_model=SurveyOut,
    status_code=201,
    summary="Create a survey",
    responses={
        201: {"links": links("respond_to_survey", "survey_results", survey_id="$response.body#/survey_id")}
    },
)
async def create_survey(
    body: SurveyIn, principal: Manager, modules: Modules, once: Idempotent
) -> dict[str, Any]:
    """eNPS or pulse surveys for employees, or a customer survey."""

    async def create() -> dict[str, Any]:
        return _survey_out(await modules.surveys.create(principal, body, once.key))

    # The organisation's surveys are its managers' together: a key names one survey among them.
    return await once(principal.org, "surveys", body, create)


@router.get("/surveys", response_model=SurveyPage, summary="List surveys")
async def list_surveys(principal: Member, modules: Modules, cursor: Cursor = None, limit: Limit = 50) -> Any:
    surveys, next_cursor = await modules.surveys.page(principal, cursor, limit)
    return {"items": [_survey_out(s) for s in surveys], "next_cursor": next_cursor}


@router.post(
    "/surveys/{survey_id}/responses",
    response_model=ResponseOut,
    status_code=201,
    responses=RATE_LIMITED_RESPONSE,
    summary="Answer a survey",
)
async def respond_to_survey(
    survey_id: str, body: ResponseIn, principal: Anyone, modules: Modules, limits: RateLimited
) -> dict[str, Any]:
    """Employees answer employee surveys once each, anonymously; customer answers come with an API key (one
    per customer_id).
    """
    principal.check_scope("surveys:respond")
    await limits.take(principal, "survey_responses")
    await modules.surveys.respond(principal, survey_id, body)
    return {"survey_id": survey_id, "accepted": True}


@router.get(
    "/surveys/{survey_id}/results",
    response_model=SurveyResultsOut,
    responses=CSV_RESPONSE,
    summary="NPS, averages and comments of a survey",
)
async def survey_results(survey_id: str, request: Request, principal: Manager, modules: Modules) -> Any:
    result = await modules.surveys.results(principal.org, survey_id)
    return json_or_csv(request, result, result["questions"], "survey")
