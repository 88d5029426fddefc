"""Advocates' HTTP routes: enrolment and profiles."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from services.sharing.advocates.schemas import (
    AdminAdvocateIn,
    AdvocateIn,
    AdvocateOut,
    AdvocatePage,
    ColleaguePage,
)
from services.sharing.advocates.service import AdvocatesService
from services.sharing.redirect.cookie import set_advocate_cookie
from services.sharing.settings import SharingSettings
from shared.app import app_state
from shared.auth import ANY_MEMBER, Principal, Role, require
from shared.errors import NOT_FOUND_RESPONSE
from shared.pagination import Cursor, Limit

router = APIRouter(prefix="/v1", tags=["advocates"])

Member = Annotated[Principal, Depends(require(*ANY_MEMBER))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]


Service = Annotated[AdvocatesService, Depends(app_state("advocates"))]
Settings = Annotated[SharingSettings, Depends(app_state("settings"))]


@router.put("/advocates/me", summary="Enrol, or update my advocate profile")
async def put_me(
    body: AdvocateIn, principal: Member, service: Service, settings: Settings, response: Response
) -> AdvocateOut:
    """Self-service enrolment from the caller's token (`sub` is the advocate id), or a new
    version of my profile. My own choices change only where the body states them: a consent
    left out (`consents`, or one of its keys) stays as it is, so a withdrawn one never comes back
    by omission, and so does `name_visible` (null: as the organisation's settings say). Someone
    new starts with both consents given and their name as the organisation's settings say.
    Emits chorus.advocate.enrolled the first time, chorus.advocate.updated after.
    """
    set_advocate_cookie(response, settings, principal)
    saved = await service.save(principal.org, principal.sub, body.profile(), stated=body.stated())
    return AdvocateOut.of(saved)


@router.get("/advocates/me", summary="My advocate profile", responses=NOT_FOUND_RESPONSE)
async def get_me(principal: Member, service: Service, settings: Settings, response: Response) -> AdvocateOut:
    """404 until the caller has enrolled with PUT /v1/advocates/me."""
    set_advocate_cookie(response, settings, principal)
    return AdvocateOut.of(await service.get(principal.org, principal.sub))


@router.put("/advocates/{advocate_id}", summary="Enrol or update an advocate (admin)")
async def put_advocate(
    advocate_id: Annotated[str, Path(min_length=1, max_length=200)],
    body: AdminAdvocateIn,
    principal: Admin,
    service: Service,
) -> AdvocateOut:
    """An admin enrols someone of the organisation, or replaces their profile; the id is that
    person's token `sub`. The advocate's own choices are theirs alone and stay as they made them
    with PUT /v1/advocates/me, whatever the body says: their consents (tracking, public ranking)
    and whether colleagues see their name. Someone new starts with the defaults: both consents
    given, their name as the organisation's settings say. Emits chorus.advocate.enrolled the
    first time, chorus.advocate.updated after.
    """
    return AdvocateOut.of(await service.save(principal.org, advocate_id, body.profile(), stated=()))


@router.get("/advocates", summary="List the organisation's advocates (admin)")
async def list_advocates(
    principal: Admin, service: Service, cursor: Cursor = None, limit: Limit = 50
) -> AdvocatePage:
    """Cursor-paginated, in id order."""
    advocates, next_cursor = await service.page(principal.org, cursor, limit)
    return AdvocatePage(items=[AdvocateOut.of(a) for a in advocates], next_cursor=next_cursor)


@router.get("/colleagues", summary="Find colleagues by name (for kudos and mentions)")
async def colleagues(
    principal: Member,
    service: Service,
    q: Annotated[str, Query(max_length=120, description="the start of a name, any case")] = "",
    cursor: Cursor = None,
    limit: Limit = 20,
) -> ColleaguePage:
    """Active colleagues of the caller's organisation who let colleagues see their name (their
    `name_visible`, else the organisation's `names_visible_by_default`), whose name starts with
    `q`, in name order. Those who keep their name to themselves are not listed at all: kudos
    reach them by their id. Nobody of another organisation is ever listed."""
    found, next_cursor = await service.colleagues(principal.org, q, cursor, limit)
    return ColleaguePage.model_validate({"items": found, "next_cursor": next_cursor}, from_attributes=True)
