"""The only MongoDB code of the metrics settings: one document per organisation, `_id` its id."""

from __future__ import annotations

from decimal import Decimal

from pymongo.asynchronous.database import AsyncDatabase

from services.metrics.org_settings.domain import EmvRates, OrgSettings
from shared.clock import DEFAULT_TIME_ZONE
from shared.migrations import NO_ORG, rewrite
from shared.mongo import Document, IndexSpec
from shared.tenancy import Tenants

ORG_SETTINGS = "org_settings"

INDEXES: list[IndexSpec] = []  # read by _id only
# Settings documents are keyed by the org and, before every query named it, did not carry it.
MIGRATIONS = [
    rewrite("2026-12-org-settings-carry-their-org", ORG_SETTINGS, NO_ORG, [{"$set": {"org": "$_id"}}]),
]


class OrgSettingsStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tenants = Tenants(db)

    async def get(self, org: str) -> OrgSettings:
        doc = await self.tenants.of(org, ORG_SETTINGS).find_one({"_id": org}) or {}
        window = doc.get("attribution_window_days")
        return OrgSettings(
            org,
            EmvRates(Decimal(doc.get("cpc", "0")), Decimal(doc.get("cpm", "0")), doc.get("currency", "USD")),
            None if window is None else int(window),
            doc.get("time_zone") or DEFAULT_TIME_ZONE,
        )

    async def set_rates(self, org: str, rates: EmvRates) -> None:
        await self._set(org, {"cpc": str(rates.cpc), "cpm": str(rates.cpm), "currency": rates.currency})

    async def set_program_settings(self, org: str, attribution_window_days: int, time_zone: str) -> None:
        await self._set(org, {"attribution_window_days": attribution_window_days, "time_zone": time_zone})

    async def _set(self, org: str, values: Document) -> None:
        # Two writers (the settings API and the settings.updated consumer) set fields of their
        # own; an upsert makes one document whichever comes first.
        await self.tenants.of(org, ORG_SETTINGS).update_one({"_id": org}, {"$set": values}, upsert=True)
