"""Use cases of the organisation's program settings."""

from __future__ import annotations

from dataclasses import dataclass

from services.content.common import Viewer, pending_events
from services.content.program import domain
from services.content.program.domain import OrgSettings
from services.content.program.store import ProgramStore
from services.content.training.service import TrainingService
from shared.clock import Clock, utc_now
from shared.outbox import Outbox


@dataclass(eq=False)
class ProgramService:
    store: ProgramStore
    training: TrainingService
    outbox: Outbox
    clock: Clock = utc_now

    async def get_settings(self, org: str) -> OrgSettings:
        return await self.store.get_settings(org)

    async def update_settings(self, org: str, by: Viewer, settings: OrgSettings) -> OrgSettings:
        known = await self.training.existing_course_ids(org, settings.required_course_ids)
        settings = domain.validate_settings(settings, known)
        events = pending_events([domain.settings_event(org, settings)], org=org, subject=org)
        await self.store.save_settings(org, settings, by.sub, self.clock(), events)
        self.outbox.nudge()
        return settings

    async def erase_editor(self, org: str, advocate_id: str) -> None:
        await self.store.erase_editor(org, advocate_id)
