"""Use cases of the analytics reports, read from the projections."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from services.metrics.analytics import domain
from services.metrics.analytics.domain import DICTIONARY
from services.metrics.org_settings.service import OrgSettingsService
from services.metrics.projections.domain import ALL
from services.metrics.projections.service import ProjectionService
from services.metrics.settings import MetricsSettings
from shared.auth import Principal
from shared.clock import Clock, utc_now


@dataclass(eq=False)
class AnalyticsService:
    settings: MetricsSettings
    projections: ProjectionService
    org_settings: OrgSettingsService
    clock: Clock = utc_now

    async def funnel(
        self, principal: Principal, from_: date, to: date, group_by: str, filters: dict[str, str]
    ) -> dict[str, Any]:
        first, last = domain.parse_day_range(from_, to)
        dim, keys = domain.scope(group_by, filters)
        rates = await self.org_settings.rates(principal.org)
        rows = await self.projections.stats(principal.org, dim, first, last, keys)
        row_totals = domain.total(rows)
        totals = (
            row_totals
            if domain.totals_from_rows(group_by, filters)
            else domain.total(await self.projections.stats(principal.org, ALL, first, last))
        )
        unassigned = domain.unassigned(group_by, filters, totals, row_totals)
        return {
            "from": from_,
            "to": to,
            "group_by": group_by,
            "filters": filters,
            "rows": domain.group_rows(rows, group_by, rates),
            "unassigned": None if unassigned is None else unassigned.row("", rates),
            "totals": totals.row("total", rates),
            "emv": domain.emv_out(rates),
        }

    async def timeseries(
        self, principal: Principal, metric: str, from_: date, to: date, interval: str, filters: dict[str, str]
    ) -> dict[str, Any]:
        domain.check_timeseries(metric, interval)
        funnel = await self.funnel(principal, from_, to, interval, filters)
        points = domain.points(funnel["rows"], metric, from_, to, interval)
        return {"metric": metric, "interval": interval, "filters": filters, "points": points}

    async def today(self, org: str) -> date:
        """The organisation's day now, in its time zone (the day its figures are counted on)."""
        return await self.org_settings.today(org, self.clock())

    async def me_stats(self, principal: Principal, days: int) -> dict[str, Any]:
        today = await self.today(principal.org)
        start = (today - timedelta(days=days - 1)).isoformat()
        previous_start = today - timedelta(days=2 * days - 1)
        rates = await self.org_settings.rates(principal.org)
        rows = await self.projections.stats(
            principal.org, "advocate", previous_start.isoformat(), today.isoformat(), [principal.sub]
        )
        current = domain.total(r for r in rows if r["day"] >= start)
        previous = domain.total(r for r in rows if r["day"] < start)
        return {
            "advocate_id": principal.sub,
            "days": days,
            "tracking_consent": await self.projections.tracking_consent(principal.org, principal.sub),
            **{n: current.counters[n] for n in domain.MY_FIGURES},
            "trend": domain.trend(current, previous),
            "daily": domain.group_rows([r for r in rows if r["day"] >= start], "day", rates),
        }

    async def program(self, org: str) -> dict[str, Any]:
        active_since = self.clock() - timedelta(days=self.settings.active_window_days)
        return domain.program(await self.projections.advocates(org), active_since)

    def dictionary(self) -> dict[str, Any]:
        return {"items": DICTIONARY}

    async def figures(
        self, org: str, dim: str, from_day: str, to_day: str, keys: Sequence[str] | None
    ) -> dict[str, Any]:
        """Every funnel figure of one dimension (of some of its values) over a day range."""
        rates = await self.org_settings.rates(org)
        return domain.total(await self.projections.stats(org, dim, from_day, to_day, keys)).row("", rates)
