"""Routes of kudos and personal goals."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from services.recognition.engagement import schemas
from services.recognition.engagement.domain import Goal, GoalProgress, GoalSpec, Kudos
from services.recognition.engagement.service import EngagementService
from services.recognition.web import TAGS, Cursor, Limit, Member
from shared.app import app_state, links
from shared.idempotency import Idempotent
from shared.names import NO_NAME, Name

router = APIRouter(prefix="/v1", tags=TAGS)


Service = Annotated[EngagementService, Depends(app_state("engagement"))]


def _kudos(kudos: Kudos, names: dict[str, Name], allowance_left: int | None = None) -> schemas.KudosOut:
    giver = NO_NAME if kudos.giver is None else names.get(kudos.giver, NO_NAME)
    receiver = names.get(kudos.receiver, NO_NAME)
    return schemas.KudosOut(
        kudos_id=kudos.id,
        from_advocate_id=kudos.giver,
        from_display_name=giver.display_name,
        from_avatar_url=giver.avatar_url,
        to=kudos.receiver,
        to_display_name=receiver.display_name,
        to_avatar_url=receiver.avatar_url,
        message=kudos.message,
        created_at=kudos.created_at,
        allowance_left=allowance_left,
    )


@router.post("/kudos", status_code=201, summary="Give a colleague kudos")
async def give_kudos(
    body: schemas.KudosIn,
    principal: Member,
    service: Service,
    once: Idempotent,
) -> schemas.KudosOut:
    """Each advocate has a weekly allowance (rules.kudos_weekly_allowance); the receiver scores."""

    async def create() -> dict[str, Any]:
        kudos, left = await service.give_kudos(principal.org, principal.sub, body.to, body.message, once.key)
        names = await service.names(principal.org, [kudos])
        return _kudos(kudos, names, left).model_dump(mode="json")

    result = await once(principal.org, f"kudos:{principal.sub}", body, create)
    return schemas.KudosOut.model_validate(result)


@router.get("/me/kudos", summary="Kudos I received")
async def my_kudos(
    principal: Member, service: Service, cursor: Cursor = None, limit: Limit = 50
) -> schemas.KudosPage:
    """Newest first; each names its giver when the giver lets colleagues see their name."""
    kudos, next_cursor = await service.kudos_received(principal.org, principal.sub, cursor, limit)
    names = await service.names(principal.org, kudos)
    return schemas.KudosPage(items=[_kudos(k, names) for k in kudos], next_cursor=next_cursor)


@router.get("/me/kudos/sent", summary="Kudos I gave")
async def my_kudos_sent(
    principal: Member, service: Service, cursor: Cursor = None, limit: Limit = 50
) -> schemas.KudosPage:
    """Newest first; each names its receiver when the receiver lets colleagues see their name."""
    kudos, next_cursor = await service.kudos_sent(principal.org, principal.sub, cursor, limit)
    names = await service.names(principal.org, kudos)
    return schemas.KudosPage(items=[_kudos(k, names) for k in kudos], next_cursor=next_cursor)


# --- personal goals ------------------------------------------------------------------------------


def _goal(goal: Goal, progress: GoalProgress) -> schemas.PersonalGoalOut:
    return schemas.PersonalGoalOut(
        goal_id=goal.id,
        kind=goal.spec.kind,
        target=goal.spec.target,
        course_id=goal.spec.course_id,
        tag=goal.spec.tag,
        current=progress.current,
        achieved=progress.achieved,
        created_at=goal.created_at,
    )


@router.get("/me/goals", summary="My goals with progress from events")
async def my_goals(principal: Member, service: Service) -> schemas.PersonalGoalPage:
    return schemas.PersonalGoalPage(
        items=[_goal(g, p) for g, p in await service.goals(principal.org, principal.sub)]
    )


@router.post(
    "/me/goals",
    status_code=201,
    summary="Set a personal goal",
    responses={201: {"links": links("delete_my_goal", goal_id="$response.body#/goal_id")}},
)
async def add_my_goal(
    body: schemas.PersonalGoalIn, principal: Member, service: Service, once: Idempotent
) -> schemas.PersonalGoalOut:
    """audience: grow my audience to `target`; posts_this_quarter: publish `target` posts this quarter;
    course: complete `course_id`; top_on_tag: reach rank `target` on `tag`.
    """
    spec = GoalSpec(body.kind, body.target, body.course_id, body.tag)

    async def create() -> dict[str, Any]:
        made = await service.add_goal(principal.org, principal.sub, spec, once.key)
        return _goal(*made).model_dump(mode="json")

    # A personal goal is the advocate's own: a key names one goal among theirs.
    result = await once(principal.org, f"goals:{principal.sub}", body, create)
    return schemas.PersonalGoalOut.model_validate(result)


@router.delete("/me/goals/{goal_id}", status_code=204, summary="Drop a goal", response_class=Response)
async def delete_my_goal(goal_id: str, principal: Member, service: Service) -> Response:
    await service.delete_goal(principal.org, principal.sub, goal_id)
    return Response(status_code=204)
