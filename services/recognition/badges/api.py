"""Routes of the badges."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from services.recognition.badges import schemas
from services.recognition.badges.domain import Award, BadgeDefinition
from services.recognition.badges.service import BadgeService
from services.recognition.web import TAGS, Admin, Member
from shared.app import app_state
from shared.fields import AS_STORED
from shared.names import Name

router = APIRouter(prefix="/v1", tags=TAGS)


Service = Annotated[BadgeService, Depends(app_state("badges"))]


def _definition(definition: BadgeDefinition) -> schemas.BadgeDefinitionOut:
    # As stored: a definition saved before a request rule (its name's characters) is answered,
    # not refused on its way out.
    return schemas.BadgeDefinitionOut.model_validate(definition, from_attributes=True, context=AS_STORED)


def _award(award: Award, name: Name) -> schemas.AwardOut:
    return schemas.AwardOut(
        display_name=name.display_name,
        avatar_url=name.avatar_url,
        award_id=award.id,
        badge_id=award.badge_id,
        name=award.name,
        awarded_at=award.awarded_at,
        credential_url=f"/v1/badges/{award.id}/credential",
    )


@router.get("/badges", summary="Badges one can earn")
async def list_badges(principal: Member, service: Service) -> schemas.BadgeDefinitionPage:
    definitions = await service.definitions(principal.org)
    return schemas.BadgeDefinitionPage(items=[_definition(d) for d in definitions])


@router.post("/badges", status_code=201, summary="Define a badge")
async def define_badge(
    body: BadgeDefinition, principal: Admin, service: Service
) -> schemas.BadgeDefinitionOut:
    """An Open Badges 3.0 achievement awarded when `metric` reaches `threshold`."""
    definition = await service.define(principal.org, body)
    return _definition(definition)


@router.get("/me/badges", summary="Badges I have earned")
async def my_badges(principal: Member, service: Service) -> schemas.AwardPage:
    awards = await service.awards_of(principal.org, principal.sub)
    name = await service.name_of(principal.org, principal.sub)
    return schemas.AwardPage(items=[_award(a, name) for a in awards])


@router.get("/badges/{award_id}/credential", summary="An award as an Open Badges 3.0 OpenBadgeCredential")
async def get_badge_credential(
    award_id: str, principal: Member, service: Service, response: Response
) -> dict[str, Any]:
    """Unsigned JSON-LD (VC Data Model 2.0); the earner or an admin may download it."""
    credential = await service.credential(principal.org, award_id, principal.sub, principal.is_admin)
    # Named once the award is found: its id is one we generated, so the header is plain ASCII
    # (a path id that is not latin-1 made the header itself fail, a 500, before the 404).
    response.headers["Content-Disposition"] = f'attachment; filename="{award_id}.json"'
    return credential
