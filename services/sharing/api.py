"""Sharing's HTTP routes (the public redirect is in redirect.py, outside FastAPI)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status

from services.sharing import domain
from services.sharing.schemas import (
    AdvocateIn,
    AdvocateOut,
    AdvocatePage,
    ShareablePage,
    ShareIn,
    ShareOut,
    SharePage,
)
from services.sharing.service import SharingService
from shared.auth import ANY_MEMBER, Principal, Role, require
from shared.pagination import Cursor

router = APIRouter(prefix="/v1")

Member = Annotated[Principal, Depends(require(*ANY_MEMBER))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
Limit = Annotated[int, Query(ge=1, le=200)]
COOKIE_MAX_AGE = 365 * 24 * 3600


async def get_service(request: Request) -> SharingService:
    service: SharingService = request.app.state.service
    return service


Service = Annotated[SharingService, Depends(get_service)]


def set_advocate_cookie(response: Response, service: SharingService, principal: Principal) -> None:
    """Lets the redirect recognise the advocate's own clicks on their links (the `self` flag)."""
    settings = service.settings
    response.set_cookie(
        settings.advocate_cookie_name,
        domain.sign_advocate(settings.visitor_hash_secret, principal.org, principal.sub),
        max_age=COOKIE_MAX_AGE,
        path="/r/",
        httponly=True,
        samesite="lax",
        secure=settings.public_base_url.startswith("https://"),
    )


@router.put(
    "/advocates/me",
    response_model=AdvocateOut,
    tags=["advocates"],
    summary="Enrol, or update my advocate profile",
    description="Self-service enrolment from the caller's token (`sub` is the advocate id). Emits "
    "chorus.advocate.enrolled the first time, chorus.advocate.updated after.",
)
async def put_me(body: AdvocateIn, principal: Member, service: Service, response: Response) -> dict[str, Any]:
    set_advocate_cookie(response, service, principal)
    return await service.save_advocate(principal.org, principal.sub, body)


@router.get(
    "/advocates/me",
    response_model=AdvocateOut,
    tags=["advocates"],
    summary="My advocate profile",
    description="404 until the caller has enrolled with PUT /v1/advocates/me.",
)
async def get_me(principal: Member, service: Service, response: Response) -> dict[str, Any]:
    set_advocate_cookie(response, service, principal)
    return await service.get_advocate(principal.org, principal.sub)


@router.put(
    "/advocates/{advocate_id}",
    response_model=AdvocateOut,
    tags=["advocates"],
    summary="Enrol or update an advocate (admin)",
    description="An admin enrols someone of the organisation; the id is that person's token `sub`.",
)
async def put_advocate(
    advocate_id: Annotated[str, Path(min_length=1, max_length=200)],
    body: AdvocateIn,
    principal: Admin,
    service: Service,
) -> dict[str, Any]:
    return await service.save_advocate(principal.org, advocate_id, body)


@router.get(
    "/advocates",
    response_model=AdvocatePage,
    tags=["advocates"],
    summary="List the organisation's advocates (admin)",
    description="Cursor-paginated, in id order.",
)
async def list_advocates(
    principal: Admin, service: Service, cursor: Cursor = None, limit: Limit = 50
) -> dict[str, Any]:
    return await service.list_advocates(principal.org, cursor, limit)


@router.delete(
    "/advocates/{advocate_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    tags=["advocates"],
    summary="Erase an advocate (the advocate themself or an admin)",
    description="Removes the advocate's personal data from sharing and emits chorus.advocate.erased, "
    "which every service honours. Their links keep working, attributed to an anonymous id.",
)
async def erase_advocate(
    advocate_id: Annotated[str, Path(min_length=1, max_length=200)], principal: Member, service: Service
) -> Response:
    await service.erase_advocate(principal, advocate_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/shares",
    response_model=ShareOut,
    status_code=status.HTTP_201_CREATED,
    tags=["shares"],
    summary="Share a content item on a network",
    description="Checks the organisation's governance (audience, policy and course gate, required "
    "disclosure, blocked words, network length, daily limit, sharing hours) and answers with the "
    "tracked short link. A refusal is a problem+json 4xx naming the reason. chorus.share.made is "
    "emitted when the share goes out (now, or at `scheduled_at`). Send an Idempotency-Key to make "
    "retries safe.",
)
async def create_share(
    body: ShareIn,
    principal: Member,
    service: Service,
    response: Response,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> dict[str, Any]:
    result, replayed = await service.create_share(principal, body, idempotency_key)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    set_advocate_cookie(response, service, principal)
    return result


@router.get(
    "/shares",
    response_model=SharePage,
    tags=["shares"],
    summary="List shares, newest first",
    description="Advocates see their own; admins see the organisation's, optionally of one advocate.",
)
async def list_shares(
    principal: Member,
    service: Service,
    response: Response,
    advocate_id: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    set_advocate_cookie(response, service, principal)
    return await service.list_shares(principal, advocate_id, cursor, limit)


@router.get(
    "/shareable",
    response_model=ShareablePage,
    tags=["shares"],
    summary="Content I may share now",
    description="Published, within its window, in my audience, and with the policy/course gate met; "
    "from sharing's projection of the content events.",
)
async def shareable(
    principal: Member, service: Service, cursor: Cursor = None, limit: Limit = 50
) -> dict[str, Any]:
    return await service.shareable(principal, cursor, limit)
