"""Routes of the content library: parse, authorise, call the service, shape the response."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from services.content.library.domain import Audience, ContentFields, ContentItem, SuggestedPost
from services.content.library.schemas import (
    AudienceModel,
    AudienceOut,
    ContentCreate,
    ContentFilters,
    ContentOut,
    ContentPage,
    ContentPatch,
    RejectRequest,
    SuggestedPostIn,
    SuggestedPostOut,
)
from services.content.library.service import LibraryService
from services.content.web import (
    Editor,
    Limit,
    Member,
    viewer_of,
)
from shared.app import app_state, links
from shared.dependencies import on_loop
from shared.errors import InvalidInput
from shared.idempotency import Idempotent
from shared.names import NO_NAME, Name
from shared.pagination import Cursor

Service = Annotated[LibraryService, Depends(app_state("library"))]

content = APIRouter(prefix="/v1/content", tags=["content"])


def _posts(posts: list[SuggestedPostIn]) -> list[SuggestedPost]:
    return [SuggestedPost(p.network, p.language, p.text) for p in posts]


def _audience(model: AudienceModel) -> Audience:
    return Audience(list(model.teams), list(model.departments), list(model.locations))


def content_out(item: ContentItem, names: dict[str, Name] | None = None) -> ContentOut:
    """The item as sent; `names` are its author's name and picture, when they allow it."""
    f = item.fields
    author = (
        NO_NAME if item.author_advocate_id is None else (names or {}).get(item.author_advocate_id, NO_NAME)
    )
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
        author_display_name=author.display_name,
        author_avatar_url=author.avatar_url,
        created_at=item.created_at,
        updated_at=item.updated_at,
        published_at=item.published_at,
        rejection_reason=item.rejection_reason,
        archive_reason=item.archive_reason,
        share_count=item.share_count,
    )


async def named_out(service: LibraryService, org: str, item: ContentItem) -> ContentOut:
    """The item as GET sends it, its author named when they allow it: what every write answers too."""
    return content_out(item, await service.author_names(org, [item]))


@content.post(
    "",
    status_code=201,
    response_model=ContentOut,
    summary="Create content",
    responses={
        201: {
            "links": links(
                "get_content",
                "edit_content",
                "publish_content",
                "reject_content",
                "archive_content",
                content_id="$response.body#/id",
            )
        }
    },
)
async def create_content(
    body: ContentCreate,
    principal: Member,
    service: Service,
    once: Idempotent,
) -> dict[str, Any]:
    """Editors and admins create a draft. An advocate's item is a submission that waits for review (status
    pending_review). Suggested posts are checked against each network's length limit, the organisation's
    required disclosure and its blocked words.
    """
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
        item = await service.create_content(principal.org, viewer_of(principal), fields, once.key)
        return (await named_out(service, principal.org, item)).model_dump(mode="json")

    return await once(principal.org, f"content:{principal.sub}", body, create)


@content.get("", summary="The content library")
async def list_content(
    principal: Member,
    service: Service,
    filters: Annotated[ContentFilters, Depends(on_loop(ContentFilters))],
    cursor: Cursor = None,
    limit: Limit = 20,
) -> ContentPage:
    """Newest first. Advocates get the live published items whose audience includes them (their team,
    department and location as sharing's profile says, which the organisation's directory sets; the token's
    `team`, `department` and `location` claims until that profile has reached this service), or their own
    items with `mine=true`. Editors and admins see every item in `status` (default published), e.g.
    `status=pending_review` for the review queue.
    """
    items, next_cursor = await service.list_content(
        principal.org, viewer_of(principal), filters, cursor=cursor, limit=limit
    )
    names = await service.author_names(principal.org, items)
    return ContentPage(items=[content_out(i, names) for i in items], next_cursor=next_cursor)


@content.get("/{content_id}", summary="One content item")
async def get_content(content_id: str, principal: Member, service: Service) -> ContentOut:
    """404 when the item does not exist or the caller may not see it."""
    item = await service.get_content(principal.org, viewer_of(principal), content_id)
    return await named_out(service, principal.org, item)


NOT_NULL = {"type", "title", "url", "tags", "audience", "suggested_posts"}
PATCH_NAMES = {"type": "content_type"}


@content.patch("/{content_id}", summary="Edit content")
async def edit_content(
    content_id: str, body: ContentPatch, principal: Member, service: Service
) -> ContentOut:
    """Editors edit any item that is not archived; an advocate edits their own submission while it waits for
    review or after it was rejected (which submits it again). Emits chorus.content.updated for items that
    left the draft stage.
    """
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
    return await named_out(service, principal.org, item)


@content.post("/{content_id}/publish", summary="Publish content (editors, admins)")
async def publish_content(content_id: str, principal: Editor, service: Service) -> ContentOut:
    """A draft or a submission waiting for review becomes published."""
    item = await service.publish_content(principal.org, viewer_of(principal), content_id)
    return await named_out(service, principal.org, item)


@content.post("/{content_id}/reject", summary="Reject a submission (editors, admins)")
async def reject_content(
    content_id: str, body: RejectRequest, principal: Editor, service: Service
) -> ContentOut:
    """Only a submission waiting for review; the reason is shown to its author."""
    item = await service.reject_content(principal.org, viewer_of(principal), content_id, body.reason)
    return await named_out(service, principal.org, item)


@content.post("/{content_id}/archive", summary="Archive content")
async def archive_content(content_id: str, principal: Member, service: Service) -> ContentOut:
    """Editors and admins archive any item; an advocate withdraws their own."""
    item = await service.archive_content(principal.org, viewer_of(principal), content_id)
    return await named_out(service, principal.org, item)
