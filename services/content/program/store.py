"""The organisation's program settings in MongoDB: one document per organisation, saved with its
chorus.settings.updated in its outbox (shared/outbox.py)."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from services.content.program.domain import OrgSettings
from shared.migrations import drop_index
from shared.mongo import Document, IndexSpec, erase_person
from shared.outbox import adopt_serialised_outbox, outbox_index, queue
from shared.tenancy import Tenants

SETTINGS = "settings"
OUTBOX_COLLECTIONS = (SETTINGS,)
# The outbox before shared/outbox.py: its pending events adopted, then its index dropped.
MIGRATIONS = [adopt_serialised_outbox(SETTINGS), drop_index(SETTINGS, "outbox_pending_1")]
INDEXES: list[IndexSpec] = [outbox_index(SETTINGS)]
SETTINGS_FIELDS = {f.name for f in dataclasses.fields(OrgSettings)}


class ProgramStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._tenants = Tenants(db)

    async def get_settings(self, org: str) -> OrgSettings:
        doc = await self._tenants.of(org, SETTINGS).find_one({"_id": org})
        if doc is None:
            return OrgSettings()
        return OrgSettings(**{k: v for k, v in doc.items() if k in SETTINGS_FIELDS})

    async def save_settings(
        self, org: str, settings: OrgSettings, updated_by: str, now: datetime, outbox: list[Document]
    ) -> None:
        fields = {**dataclasses.asdict(settings), "updated_by": updated_by, "updated_at": now}
        await self._tenants.of(org, SETTINGS).update_one(
            {"_id": org}, queue({"$set": fields}, outbox), upsert=True
        )

    async def erase_editor(self, org: str, person: str) -> None:
        """The settings no longer name who last saved them (one document per organisation)."""
        await erase_person(self._tenants.of(org, SETTINGS), "updated_by", person)
