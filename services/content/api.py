"""Routes of the content service: parse, authorise, call the service, shape the response."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request

from services.content.domain import (
    Audience,
    ContentFields,
    ContentItem,
    Module,
    OrgSettings,
    Status,
    SuggestedPost,
    Viewer,
)
from services.content.schemas import (
    AcknowledgeRequest,
    AudienceModel,
    AudienceOut,
    ContentCreate,
    ContentOut,
    ContentPage,
    ContentPatch,
    ContentType,
    CourseIn,
    CourseOut,
    CoursePage,
    CurrentPolicyOut,
    ModuleIn,
    ModuleOut,
    Network,
    PolicyCreate,
    PolicyOut,
    PolicyPage,
    ProgressOut,
    RejectRequest,
    SettingsModel,
    SuggestedPostIn,
    SuggestedPostOut,
)
from services.content.service import ContentFilters, ContentService, PolicyView
from services.content.store import Course, Policy, Progress, new_id
from shared.auth import ANY_MEMBER, Principal, Role, require
from shared.errors import InvalidInput, PayloadTooLarge
from shared.pagination import Cursor

EDITORS = (Role.ADMIN, Role.EDITOR)
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key", description="repeat a create safely: the same key replays the first response"
    ),
]
Limit = Annotated[int, Query(ge=1, le=100, description="page size")]


async def get_service(request: Request) -> ContentService:
    service: ContentService = request.app.state.service
    return service


Service = Annotated[ContentService, Depends(get_service)]
Member = Annotated[Principal, Depends(require(*ANY_MEMBER))]
Editor = Annotated[Principal, Depends(require(*EDITORS))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]


async def limit_body_size(request: Request) -> None:
    """Refuse oversized bodies with 413 before anything is validated or stored."""
    max_bytes: int = request.app.state.settings.content_max_body_bytes
    declared = request.headers.get("content-length", "")
    if (declared.isdigit() and int(declared) > max_bytes) or len(await request.body()) > max_bytes:
        raise PayloadTooLarge(
            f"body: the request body is larger than {max_bytes} bytes",
            errors=[{"field": "body", "message": f"must be at most {max_bytes} bytes"}],
        )


def viewer_of(principal: Principal) -> Viewer:
    # Audience attributes come from the token: this service does not own advocate profiles.
    return Viewer.from_claims(principal.sub, principal.roles, principal.claims)


# --- content ----------------------------------------------------------------------------------

content = APIRouter(prefix="/v1/content", tags=["content"], dependencies=[Depends(limit_body_size)])


def _posts(posts: list[SuggestedPostIn]) -> list[SuggestedPost]:
    return [SuggestedPost(p.network, p.language, p.text) for p in posts]


def _audience(model: AudienceModel) -> Audience:
    return Audience(list(model.teams), list(model.departments), list(model.locations))


def content_out(item: ContentItem) -> ContentOut:
    f = item.fields
    return ContentOut(
        id=item.id,
        status=item.status,
        type=f.content_type,
        title=f.title,
        url=f.url,
        summary=f.summary,
        image_url=f.image_url,
        tags=f.tags,
        language=f.language,
        audience=AudienceOut(
            teams=f.audience.teams, departments=f.audience.departments, locations=f.audience.locations
        ),
        starts_at=f.starts_at,
        expires_at=f.expires_at,
        suggested_posts=[
            SuggestedPostOut(network=p.network, language=p.language, text=p.text) for p in f.suggested_posts
        ],
        networks=f.networks,
        author_advocate_id=item.author_advocate_id,
        created_at=item.created_at,
        updated_at=item.updated_at,
        published_at=item.published_at,
        rejection_reason=item.rejection_reason,
        archive_reason=item.archive_reason,
        share_count=item.share_count,
    )


@content.post(
    "",
    status_code=201,
    response_model=ContentOut,
    summary="Create content",
    description="Editors and admins create a draft. An advocate's item is a submission that waits for "
    "review (status pending_review). Suggested posts are checked against each network's length limit, "
    "the organisation's required disclosure and its blocked words.",
)
async def create_content(
    body: ContentCreate, principal: Member, service: Service, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    fields = ContentFields(
        content_type=body.type,
        title=body.title,
        url=body.url,
        summary=body.summary,
        image_url=body.image_url,
        tags=list(body.tags),
        language=body.language,
        audience=_audience(body.audience),
        starts_at=body.starts_at,
        expires_at=body.expires_at,
        suggested_posts=_posts(body.suggested_posts),
    )

    async def create() -> dict[str, Any]:
        item = await service.create_content(principal.org, viewer_of(principal), fields)
        return content_out(item).model_dump(mode="json")

    return await service.idempotent(
        principal.org, f"content:{principal.sub}", idempotency_key, body.model_dump(mode="json"), create
    )


@content.get(
    "",
    response_model=ContentPage,
    summary="The content library",
    description="Newest first. Advocates get the live published items whose audience includes them "
    "(their team, department and location come from the token's `team`, `department` and `location` "
    "claims), or their own items with `mine=true`. Editors and admins see every item in `status` "
    "(default published), e.g. `status=pending_review` for the review queue.",
)
async def list_content(
    principal: Member,
    service: Service,
    status: Annotated[Status | None, Query(description="editors and admins only, except published")] = None,
    mine: Annotated[bool, Query(description="only items the caller submitted, in any status")] = False,
    tag: Annotated[str | None, Query(max_length=50)] = None,
    type: Annotated[ContentType | None, Query()] = None,
    language: Annotated[str | None, Query(max_length=35)] = None,
    network: Annotated[Network | None, Query(description="items with a suggested post for it")] = None,
    q: Annotated[str | None, Query(max_length=200, description="text in the title or summary")] = None,
    since: Annotated[datetime | None, Query(description="only items published at or after this time")] = None,
    cursor: Cursor = None,
    limit: Limit = 20,
) -> ContentPage:
    filters = ContentFilters(
        status=status,
        mine=mine,
        tag=tag,
        content_type=type,
        language=language,
        network=network,
        text=q,
        since=since,
    )
    items, next_cursor = await service.list_content(
        principal.org, viewer_of(principal), filters, cursor=cursor, limit=limit
    )
    return ContentPage(items=[content_out(i) for i in items], next_cursor=next_cursor)


@content.get(
    "/{content_id}",
    response_model=ContentOut,
    summary="One content item",
    description="404 when the item does not exist or the caller may not see it.",
)
async def get_content(content_id: str, principal: Member, service: Service) -> ContentOut:
    return content_out(await service.get_content(principal.org, viewer_of(principal), content_id))


NOT_NULL = {"type", "title", "url", "tags", "audience", "suggested_posts"}
PATCH_NAMES = {"type": "content_type"}


@content.patch(
    "/{content_id}",
    response_model=ContentOut,
    summary="Edit content",
    description="Editors edit any item that is not archived; an advocate edits their own submission while "
    "it waits for review or after it was rejected (which submits it again). Emits "
    "chorus.content.updated for items that left the draft stage.",
)
async def edit_content(
    content_id: str, body: ContentPatch, principal: Member, service: Service
) -> ContentOut:
    changes: dict[str, Any] = {}
    for name in body.model_fields_set:
        value = getattr(body, name)
        if value is None and name in NOT_NULL:
            raise InvalidInput.field(name, "cannot be null")
        if name == "audience":
            value = _audience(value)
        elif name == "suggested_posts":
            value = _posts(value)
        elif name == "tags":
            value = list(value)
        changes[PATCH_NAMES.get(name, name)] = value
    item = await service.edit_content(principal.org, viewer_of(principal), content_id, changes)
    return content_out(item)


@content.post(
    "/{content_id}/publish",
    response_model=ContentOut,
    summary="Publish content (editors, admins)",
    description="A draft or a submission waiting for review becomes published.",
)
async def publish_content(content_id: str, principal: Editor, service: Service) -> ContentOut:
    return content_out(await service.publish_content(principal.org, viewer_of(principal), content_id))


@content.post(
    "/{content_id}/reject",
    response_model=ContentOut,
    summary="Reject a submission (editors, admins)",
    description="Only a submission waiting for review; the reason is shown to its author.",
)
async def reject_content(
    content_id: str, body: RejectRequest, principal: Editor, service: Service
) -> ContentOut:
    return content_out(
        await service.reject_content(principal.org, viewer_of(principal), content_id, body.reason)
    )


@content.post(
    "/{content_id}/archive",
    response_model=ContentOut,
    summary="Archive content",
    description="Editors and admins archive any item; an advocate withdraws their own.",
)
async def archive_content(content_id: str, principal: Member, service: Service) -> ContentOut:
    return content_out(await service.archive_content(principal.org, viewer_of(principal), content_id))


# --- organisation settings --------------------------------------------------------------------

settings_router = APIRouter(prefix="/v1/settings", tags=["settings"], dependencies=[Depends(limit_body_size)])


def _settings_model(settings: OrgSettings) -> SettingsModel:
    return SettingsModel.model_validate(settings, from_attributes=True)


@settings_router.get(
    "",
    response_model=SettingsModel,
    summary="The organisation's program settings",
    description="Readable by every member (composers need the disclosure and blocked words).",
)
async def get_settings(principal: Member, service: Service) -> SettingsModel:
    return _settings_model(await service.get_settings(principal.org))


@settings_router.put(
    "",
    response_model=SettingsModel,
    summary="Replace the program settings (admins)",
    description="Emits chorus.settings.updated, which sharing enforces on every share.",
)
async def put_settings(body: SettingsModel, principal: Admin, service: Service) -> SettingsModel:
    settings = OrgSettings(**body.model_dump())
    saved = await service.update_settings(principal.org, viewer_of(principal), settings)
    return _settings_model(saved)


# --- the social media policy ------------------------------------------------------------------

policy = APIRouter(prefix="/v1/policy", tags=["policy"], dependencies=[Depends(limit_body_size)])


def _policy_out(p: Policy) -> PolicyOut:
    return PolicyOut(version=p.version, title=p.title, body=p.body, published_at=p.published_at)


def _current_out(view: PolicyView) -> CurrentPolicyOut:
    return CurrentPolicyOut(
        policy=_policy_out(view.policy) if view.policy else None, acknowledged_at=view.acknowledged_at
    )


@policy.get(
    "", response_model=CurrentPolicyOut, summary="The current policy and whether the caller acknowledged it"
)
async def current_policy(principal: Member, service: Service) -> CurrentPolicyOut:
    return _current_out(await service.current_policy(principal.org, viewer_of(principal)))


@policy.get(
    "/versions", response_model=PolicyPage, summary="Every policy version, newest first (editors, admins)"
)
async def list_policies(
    principal: Editor, service: Service, cursor: Cursor = None, limit: Limit = 20
) -> PolicyPage:
    items, next_cursor = await service.list_policies(principal.org, cursor=cursor, limit=limit)
    return PolicyPage(items=[_policy_out(p) for p in items], next_cursor=next_cursor)


@policy.post(
    "/versions",
    status_code=201,
    response_model=PolicyOut,
    summary="Publish a new policy version (admins)",
    description="Emits chorus.policy.published; acknowledgements of older versions lapse.",
)
async def publish_policy(
    body: PolicyCreate, principal: Admin, service: Service, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    async def create() -> dict[str, Any]:
        created = await service.publish_policy(principal.org, viewer_of(principal), body.title, body.body)
        return _policy_out(created).model_dump(mode="json")

    return await service.idempotent(
        principal.org, f"policy:{principal.sub}", idempotency_key, body.model_dump(mode="json"), create
    )


@policy.post(
    "/acknowledgements",
    response_model=CurrentPolicyOut,
    summary="Acknowledge the current policy",
    description="The caller acknowledges the current version (409 for any other). Emits "
    "chorus.policy.acknowledged once; repeating it changes nothing.",
)
async def acknowledge_policy(
    body: AcknowledgeRequest, principal: Member, service: Service
) -> CurrentPolicyOut:
    return _current_out(await service.acknowledge_policy(principal.org, viewer_of(principal), body.version))


# --- courses ----------------------------------------------------------------------------------

courses = APIRouter(prefix="/v1/courses", tags=["courses"], dependencies=[Depends(limit_body_size)])


def _modules(modules: list[ModuleIn]) -> list[Module]:
    return [Module(m.id or new_id(), m.title, m.body, m.url, m.minutes) for m in modules]


def _course_out(course: Course) -> CourseOut:
    return CourseOut(
        id=course.id,
        title=course.title,
        description=course.description,
        modules=[
            ModuleOut(id=m.id, title=m.title, body=m.body, url=m.url, minutes=m.minutes)
            for m in course.modules
        ],
        total_minutes=sum(m.minutes for m in course.modules),
        created_at=course.created_at,
        updated_at=course.updated_at,
    )


def _progress_out(progress: Progress) -> ProgressOut:
    return ProgressOut(
        course_id=progress.course_id,
        advocate_id=progress.advocate_id,
        completed_module_ids=progress.completed_module_ids,
        completed_at=progress.completed_at,
    )


@courses.post(
    "",
    status_code=201,
    response_model=CourseOut,
    summary="Create a course (editors, admins)",
    description="A course is a list of modules, each with a body or a URL and its minutes.",
)
async def create_course(
    body: CourseIn, principal: Editor, service: Service, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    async def create() -> dict[str, Any]:
        course = await service.create_course(
            principal.org, viewer_of(principal), body.title, body.description, _modules(body.modules)
        )
        return _course_out(course).model_dump(mode="json")

    return await service.idempotent(
        principal.org, f"course:{principal.sub}", idempotency_key, body.model_dump(mode="json"), create
    )


@courses.get("", response_model=CoursePage, summary="The organisation's courses, newest first")
async def list_courses(
    principal: Member, service: Service, cursor: Cursor = None, limit: Limit = 20
) -> CoursePage:
    items, next_cursor = await service.list_courses(principal.org, cursor=cursor, limit=limit)
    return CoursePage(items=[_course_out(c) for c in items], next_cursor=next_cursor)


@courses.get("/{course_id}", response_model=CourseOut, summary="One course")
async def get_course(course_id: str, principal: Member, service: Service) -> CourseOut:
    return _course_out(await service.get_course(principal.org, course_id))


@courses.put(
    "/{course_id}",
    response_model=CourseOut,
    summary="Replace a course (editors, admins)",
    description="Keep module ids to keep advocates' progress on those modules.",
)
async def replace_course(course_id: str, body: CourseIn, principal: Editor, service: Service) -> CourseOut:
    course = await service.replace_course(
        principal.org, course_id, body.title, body.description, _modules(body.modules)
    )
    return _course_out(course)


@courses.get(
    "/{course_id}/progress",
    response_model=ProgressOut,
    summary="Progress in a course",
    description="The caller's own progress; editors and admins may ask for an advocate's with `advocate_id`.",
)
async def get_progress(
    course_id: str,
    principal: Member,
    service: Service,
    advocate_id: Annotated[str | None, Query(max_length=200)] = None,
) -> ProgressOut:
    progress = await service.get_progress(
        principal.org, viewer_of(principal), course_id, advocate_id=advocate_id
    )
    return _progress_out(progress)


@courses.post(
    "/{course_id}/modules/{module_id}/complete",
    response_model=ProgressOut,
    summary="Mark a module done for the caller",
    description="When the caller has done every module, emits chorus.course.completed (once).",
)
async def complete_module(course_id: str, module_id: str, principal: Member, service: Service) -> ProgressOut:
    progress = await service.complete_module(principal.org, viewer_of(principal), course_id, module_id)
    return _progress_out(progress)


ROUTERS = [content, settings_router, policy, courses]
