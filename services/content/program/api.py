"""Routes of the organisation's program settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from services.content.program.domain import OrgSettings
from services.content.program.schemas import SettingsModel
from services.content.program.service import ProgramService
from services.content.web import Admin, Member, viewer_of
from shared.app import app_state
from shared.fields import AS_STORED

Service = Annotated[ProgramService, Depends(app_state("program"))]

settings_router = APIRouter(prefix="/v1/settings", tags=["settings"])


def _settings_model(settings: OrgSettings) -> SettingsModel:
    return SettingsModel.model_validate(settings, from_attributes=True, context=AS_STORED)


@settings_router.get("", summary="The organisation's program settings")
async def get_settings(principal: Member, service: Service) -> SettingsModel:
    """Readable by every member (composers need the disclosure and blocked words)."""
    return _settings_model(await service.get_settings(principal.org))


@settings_router.put("", summary="Replace the program settings (admins)")
async def put_settings(body: SettingsModel, principal: Admin, service: Service) -> SettingsModel:
    """Emits chorus.settings.updated, which sharing enforces on every share."""
    settings = OrgSettings(**body.model_dump())
    saved = await service.update_settings(principal.org, viewer_of(principal), settings)
    return _settings_model(saved)
