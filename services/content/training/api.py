"""Routes of training: the social media policy, courses and progress."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from services.content.common import new_id
from services.content.training.domain import Course, Module, Policy, Progress
from services.content.training.schemas import (
    AcknowledgeRequest,
    CourseIn,
    CourseOut,
    CoursePage,
    CurrentPolicyOut,
    ModuleIn,
    ModuleOut,
    PolicyCreate,
    PolicyOut,
    PolicyPage,
    ProgressOut,
)
from services.content.training.service import PolicyView, TrainingService
from services.content.web import (
    Admin,
    Editor,
    Limit,
    Member,
    viewer_of,
)
from shared.app import app_state, links
from shared.idempotency import Idempotent
from shared.pagination import Cursor
from shared.preconditions import ETAG_HEADER, IfMatch, etag

Service = Annotated[TrainingService, Depends(app_state("training"))]

policy = APIRouter(prefix="/v1/policy", tags=["policy"])


def _policy_out(p: Policy) -> PolicyOut:
    return PolicyOut.model_validate(p, from_attributes=True)


def _current_out(view: PolicyView) -> CurrentPolicyOut:
    return CurrentPolicyOut(
        policy=_policy_out(view.policy) if view.policy else None, acknowledged_at=view.acknowledged_at
    )


@policy.get("", summary="The current policy and whether the caller acknowledged it")
async def current_policy(principal: Member, service: Service) -> CurrentPolicyOut:
    return _current_out(await service.current_policy(principal.org, viewer_of(principal)))


@policy.get("/versions", summary="Every policy version, newest first (editors, admins)")
async def list_policies(
    principal: Editor, service: Service, cursor: Cursor = None, limit: Limit = 20
) -> PolicyPage:
    items, next_cursor = await service.list_policies(principal.org, cursor=cursor, limit=limit)
    return PolicyPage(items=[_policy_out(p) for p in items], next_cursor=next_cursor)


@policy.post(
    "/versions", status_code=201, response_model=PolicyOut, summary="Publish a new policy version (admins)"
)
async def publish_policy(
    body: PolicyCreate,
    principal: Admin,
    service: Service,
    once: Idempotent,
) -> dict[str, Any]:
    """Emits chorus.policy.published; acknowledgements of older versions lapse."""

    async def create() -> dict[str, Any]:
        created = await service.publish_policy(
            principal.org, viewer_of(principal), body.title, body.body, once.key
        )
        return _policy_out(created).model_dump(mode="json")

    return await once(principal.org, f"policy:{principal.sub}", body, create)


@policy.post("/acknowledgements", summary="Acknowledge the current policy")
async def acknowledge_policy(
    body: AcknowledgeRequest, principal: Member, service: Service
) -> CurrentPolicyOut:
    """The caller acknowledges the current version (409 for any other). Emits chorus.policy.acknowledged once;
    repeating it changes nothing.
    """
    return _current_out(await service.acknowledge_policy(principal.org, viewer_of(principal), body.version))


# --- courses ----------------------------------------------------------------------------------

courses = APIRouter(prefix="/v1/courses", tags=["courses"])


def _modules(modules: list[ModuleIn]) -> list[Module]:
    return [Module(m.id or new_id(), m.title, m.body, m.url, m.minutes) for m in modules]


def _course_out(course: Course) -> CourseOut:
    return CourseOut(
        id=course.id,
        title=course.title,
        description=course.description,
        modules=[ModuleOut.model_validate(m, from_attributes=True) for m in course.modules],
        total_minutes=sum(m.minutes for m in course.modules),
        created_at=course.created_at,
        updated_at=course.updated_at,
    )


def _progress_out(progress: Progress) -> ProgressOut:
    return ProgressOut.model_validate(progress, from_attributes=True)


@courses.post(
    "",
    status_code=201,
    response_model=CourseOut,
    summary="Create a course (editors, admins)",
    responses={
        201: {"links": links("get_course", "replace_course", "get_progress", course_id="$response.body#/id")}
    },
)
async def create_course(
    body: CourseIn,
    principal: Editor,
    service: Service,
    once: Idempotent,
) -> dict[str, Any]:
    """A course is a list of modules, each with a body or a URL and its minutes."""

    async def create() -> dict[str, Any]:
        course = await service.create_course(
            principal.org,
            viewer_of(principal),
            body.title,
            body.description,
            _modules(body.modules),
            once.key,
        )
        return _course_out(course).model_dump(mode="json")

    return await once(principal.org, f"course:{principal.sub}", body, create)


@courses.get("", summary="The organisation's courses, newest first")
async def list_courses(
    principal: Member, service: Service, cursor: Cursor = None, limit: Limit = 20
) -> CoursePage:
    items, next_cursor = await service.list_courses(principal.org, cursor=cursor, limit=limit)
    return CoursePage(items=[_course_out(c) for c in items], next_cursor=next_cursor)


@courses.get("/{course_id}", summary="One course", responses={200: {"headers": ETAG_HEADER}})
async def get_course(course_id: str, principal: Member, service: Service, response: Response) -> CourseOut:
    course = await service.get_course(principal.org, course_id)
    response.headers["ETag"] = etag(course.version)
    return _course_out(course)


@courses.put(
    "/{course_id}", summary="Replace a course (editors, admins)", responses={200: {"headers": ETAG_HEADER}}
)
async def replace_course(
    course_id: str,
    body: CourseIn,
    principal: Editor,
    service: Service,
    response: Response,
    if_match: IfMatch = None,
) -> CourseOut:
    """Keep module ids to keep advocates' progress on those modules. An advocate who has done every module
    the course keeps has completed it (chorus.course.completed, once). With If-Match (the ETag of the
    course as read), it is replaced only at that version: 412 once another editor replaced it since.
    """
    course = await service.replace_course(
        principal.org, course_id, body.title, body.description, _modules(body.modules), if_match
    )
    response.headers["ETag"] = etag(course.version)
    return _course_out(course)


@courses.get("/{course_id}/progress", summary="Progress in a course")
async def get_progress(
    course_id: str,
    principal: Member,
    service: Service,
    advocate_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> ProgressOut:
    """The caller's own progress; editors and admins may ask for an advocate's with `advocate_id`."""
    progress = await service.get_progress(
        principal.org, viewer_of(principal), course_id, advocate_id=advocate_id
    )
    return _progress_out(progress)


@courses.post("/{course_id}/modules/{module_id}/complete", summary="Mark a module done for the caller")
async def complete_module(course_id: str, module_id: str, principal: Member, service: Service) -> ProgressOut:
    """When the caller has done every module, emits chorus.course.completed (once)."""
    progress = await service.complete_module(principal.org, viewer_of(principal), course_id, module_id)
    return _progress_out(progress)
