"""Use cases of the metrics settings."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from services.metrics.org_settings.domain import EmvRates, OrgSettings, counting_zone, parse_rates
from services.metrics.org_settings.store import OrgSettingsStore
from services.metrics.settings import MetricsSettings
from shared.clock import local_date
from shared.events.content import SettingsUpdated
from shared.ttl_cache import TtlCache

log = logging.getLogger(__name__)

# How long the projector trusts a time zone it read: a change of zone reaches the counters of
# new events within this (and history in the new zone through `chorus rebuild metrics`).
ZONE_CACHE_S = 2.0


@dataclass(eq=False)
class OrgSettingsService:
    settings: MetricsSettings
    store: OrgSettingsStore
    _zones: TtlCache[str, str] = field(default_factory=lambda: TtlCache(ZONE_CACHE_S), init=False)

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

    async def time_zone(self, org: str) -> str:
        """The organisation's IANA time zone (UTC until it sets one)."""
        return (await self.store.get(org)).time_zone

    async def today(self, org: str, now: datetime) -> date:
        """The organisation's day at `now`, in its time zone."""
        return local_date(now, await self.time_zone(org))

    async def time_zones(self, orgs: Iterable[str]) -> dict[str, str]:
        """The time zones of some organisations, for the projector: read at most every
        ZONE_CACHE_S seconds per organisation (a poll may touch the same ones again and again)."""
        return await self._zones.get_many(orgs, self._counting_zone)

    async def _counting_zone(self, org: str) -> str:
        zone = await self.time_zone(org)
        if (counted := counting_zone(zone)) != zone:
            log.warning("unknown time zone %r of %s: counting its days in %s", zone, org, counted)
        return counted

    async def settings_updated(self, org: str, updated: SettingsUpdated) -> None:
        await self.store.set_program_settings(org, updated.attribution_window_days, updated.time_zone)
