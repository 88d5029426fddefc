"""Routes of the program goals."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from services.metrics.goals.schemas import GoalIn, GoalOut, GoalPage
from services.metrics.goals.service import GoalReport
from services.metrics.web import CSV_RESPONSE, Cursor, Limit, Manager, Modules, json_or_csv
from shared.app import links
from shared.errors import NOT_FOUND_RESPONSE
from shared.idempotency import Idempotent

router = APIRouter(prefix="/v1", tags=["goals"])


def _goal_out(report: GoalReport) -> dict[str, Any]:
    goal, progress = report.goal, report.progress
    return {
        "goal_id": goal.id,
        "name": goal.name,
        "metric": goal.metric,
        "target": goal.target,
        "starts_on": goal.starts_on.isoformat(),
        "ends_on": goal.ends_on.isoformat(),
        "filter_dim": goal.filter_dim,
        "filter_key": goal.filter_key,
        "survey_id": goal.survey_id,
        "question_id": goal.question_id,
        "value": progress.value,
        "progress": progress.progress,
        "forecast": progress.forecast,
        "status": progress.status,
        "history": [{"date": s.date, "value": s.value, "enrolled": s.enrolled} for s in report.history],
    }


@router.post(
    "/goals",
    response_model=GoalOut,
    status_code=201,
    summary="Set a program goal",
    responses={
        201: {"links": links("get_goal", "delete_goal", goal_id="$response.body#/goal_id")},
        **NOT_FOUND_RESPONSE,  # a `survey_id` of no survey in the organisation
    },
)
async def create_goal(body: GoalIn, principal: Manager, modules: Modules, once: Idempotent) -> dict[str, Any]:
    """A target on any metric over 1, 3 or 6 months from today, or between two dates."""

    async def create() -> dict[str, Any]:
        return _goal_out(await modules.goals.create(principal, body, once.key))

    # The organisation's goals are its managers' together: a key names one goal among them.
    return await once(principal.org, "goals", body, create)


@router.get(
    "/goals",
    response_model=GoalPage,
    responses=CSV_RESPONSE,
    summary="Goals with progress, forecast and status",
)
async def list_goals(
    request: Request, principal: Manager, modules: Modules, cursor: Cursor = None, limit: Limit = 50
) -> Any:
    reports, next_cursor = await modules.goals.page(principal, cursor, limit)
    items = [_goal_out(r) for r in reports]
    rows = [{k: v for k, v in g.items() if k != "history"} for g in items]  # CSV: one line a goal
    return json_or_csv(request, {"items": items, "next_cursor": next_cursor}, rows, "goals")


@router.get("/goals/{goal_id}", response_model=GoalOut, summary="A goal with its daily history")
async def get_goal(goal_id: str, principal: Manager, modules: Modules) -> dict[str, Any]:
    """history: one snapshot per day."""
    return _goal_out(await modules.goals.get(principal, goal_id))


@router.delete("/goals/{goal_id}", status_code=204, response_class=Response, summary="Delete a goal")
async def delete_goal(goal_id: str, principal: Manager, modules: Modules) -> Response:
    await modules.goals.delete(principal, goal_id)
    return Response(status_code=204)
