"""Shares' HTTP routes (the public redirect is in redirect/, outside FastAPI)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status

from services.sharing.advocates.api import Member, Settings
from services.sharing.redirect.cookie import set_advocate_cookie
from services.sharing.shares.domain import ShareLimitReached
from services.sharing.shares.schemas import ShareableItem, ShareablePage, ShareIn, ShareOut, SharePage
from services.sharing.shares.service import SharesService
from shared.app import app_state
from shared.errors import NOT_FOUND_RESPONSE, PROBLEM_JSON
from shared.idempotency import Idempotent
from shared.pagination import Cursor, Limit

router = APIRouter(prefix="/v1", tags=["shares"])


Service = Annotated[SharesService, Depends(app_state("shares"))]

# A share past the organisation's daily limit. No Retry-After: a scheduled share counts on its
# own day, and a limit of 0 has no end, so no wait is sure to help.
SHARE_LIMIT_RESPONSE: dict[int | str, dict[str, Any]] = {
    429: {
        "description": "the daily share limit is reached for the day the share goes out, or sharing is"
        f" switched off (limit 0); `type` is {ShareLimitReached('').to_problem()['type']}",
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
}


@router.post(
    "/shares",
    response_model=ShareOut,
    status_code=status.HTTP_201_CREATED,
    summary="Share a content item on a network",
    # the content item is not (or no longer) shareable; the daily limit
    responses={**NOT_FOUND_RESPONSE, **SHARE_LIMIT_RESPONSE},
)
async def create_share(
    body: ShareIn,
    principal: Member,
    service: Service,
    settings: Settings,
    response: Response,
    once: Idempotent,
) -> dict[str, Any]:
    """Checks the organisation's governance (audience, policy and course gate, required disclosure, blocked
    words, network length, daily limit, sharing hours) and answers with the tracked short link. A refusal
    is a problem+json 4xx naming the reason. chorus.share.made is emitted when the share goes out (now, or
    at `scheduled_at`). Send an Idempotency-Key to make retries safe.
    """

    async def create() -> dict[str, Any]:
        share = await service.create(
            principal, body.content_id, body.network, body.message, body.scheduled_at, once.key
        )
        return ShareOut.of(share).model_dump(mode="json")

    scope = f"share:{principal.sub}"
    result = await once(principal.org, scope, body, create)
    set_advocate_cookie(response, settings, principal)
    return result


@router.get("/shares", summary="List shares, newest first")
async def list_shares(
    principal: Member,
    service: Service,
    settings: Settings,
    response: Response,
    advocate_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> SharePage:
    """Advocates see their own; admins see the organisation's, optionally of one advocate."""
    set_advocate_cookie(response, settings, principal)
    shares, next_cursor = await service.page(principal, advocate_id, cursor, limit)
    return SharePage(items=[ShareOut.of(s) for s in shares], next_cursor=next_cursor)


@router.get("/shareable", summary="Content I may share now")
async def shareable(
    principal: Member, service: Service, cursor: Cursor = None, limit: Limit = 50
) -> ShareablePage:
    """Published, within its window, in my audience, and with the policy/course gate met; from sharing's
    projection of the content events.
    """
    contents, next_cursor = await service.shareable(principal, cursor, limit)
    return ShareablePage(items=[ShareableItem.of(c) for c in contents], next_cursor=next_cursor)
