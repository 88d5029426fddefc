"""Routes of the scoring rules."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from services.recognition.rules import schemas
from services.recognition.rules.service import RulesService
from services.recognition.web import TAGS, Admin, Cursor, Limit, Member
from shared.app import app_state

router = APIRouter(prefix="/v1", tags=TAGS)


Service = Annotated[RulesService, Depends(app_state("rules"))]


@router.get("/rules", summary="The organisation's current rules")
async def get_rules(principal: Member, service: Service) -> schemas.RulesOut:
    """Points per event kind, caps, exclusions, campaigns. Version 0 = the defaults."""
    version, rules = await service.rules(principal.org)
    return schemas.RulesOut(version=version, rules=rules)


@router.put("/rules", summary="Publish a new version of the rules")
async def put_rules(body: schemas.RulesIn, principal: Admin, service: Service) -> schemas.RulesOut:
    """Rules are versioned: this adds a version and never edits an old one. Events are scored with the version
    current when they are processed.
    """
    version = await service.publish(
        principal.org, body.rules, expected_version=body.expected_version, by=principal.sub
    )
    return schemas.RulesOut(version=version, rules=body.rules)


@router.get("/rules/versions", summary="Every published version")
async def rule_versions(
    principal: Admin, service: Service, cursor: Cursor = None, limit: Limit = 50
) -> schemas.RuleVersionPage:
    versions, next_cursor = await service.versions(principal.org, cursor, limit)
    page = {"items": versions, "next_cursor": next_cursor}
    return schemas.RuleVersionPage.model_validate(page, from_attributes=True)
