"""Use cases of the metrics settings."""

from __future__ import annotations

from dataclasses import dataclass

from services.metrics.org_settings.domain import EmvRates, OrgSettings, parse_rates
from services.metrics.org_settings.store import OrgSettingsStore
from services.metrics.settings import MetricsSettings
from shared.events.content import SettingsUpdated


@dataclass(eq=False)
class OrgSettingsService:
    settings: MetricsSettings
    store: OrgSettingsStore

    async def of(self, org: str) -> OrgSettings:
        return await self.store.get(org)

    async def rates(self, org: str) -> EmvRates:
        return (await self.store.get(org)).rates

    def window_days(self, settings: OrgSettings) -> int:
        """The attribution window of the organisation, or the service's default."""
        if settings.attribution_window_days is None:
            return self.settings.default_attribution_window_days
        return settings.attribution_window_days

    async def set_rates(self, org: str, cpc: str, cpm: str, currency: str) -> OrgSettings:
        await self.store.set_rates(org, parse_rates(cpc, cpm, currency))
        return await self.store.get(org)

    async def settings_updated(self, org: str, updated: SettingsUpdated) -> None:
        await self.store.set_attribution_window(org, updated.attribution_window_days)
