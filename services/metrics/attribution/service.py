"""Use cases of attribution: record a lead or a sale (the conversions API), and forget an erased
advocate's touches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.metrics.attribution import domain
from services.metrics.attribution.domain import Reported
from services.metrics.attribution.schemas import ConversionIn
from services.metrics.attribution.store import AttributionStore
from services.metrics.org_settings.service import OrgSettingsService
from services.metrics.projections.service import ProjectionService
from shared.clock import Clock, utc_now
from shared.outbox import Outbox


@dataclass(eq=False)
class AttributionService:
    store: AttributionStore
    projections: ProjectionService
    org_settings: OrgSettingsService
    outbox: Outbox
    clock: Clock = utc_now

    async def record_conversion(self, org: str, body: ConversionIn) -> dict[str, Any]:
        amount, currency = domain.parse_money(body.type, body.amount, body.currency)
        order_id = domain.check_order(body.type, body.order_id)
        reported = Reported(org, body.type, body.customer_id, body.click_id, amount, currency, order_id)
        window_days = self.org_settings.window_days(await self.org_settings.of(org))
        at = domain.conversion_time(body.occurred_at, self.clock(), window_days)
        since = domain.window_start(at, window_days)
        click = await self.projections.click(org, body.click_id) if body.click_id else None
        reason = domain.unattributed_reason(body.click_id, click, since, window_days, at)
        credits: list[dict[str, Any]] = []
        if reason is None and click is not None:
            found = (
                await self.projections.visitor_clicks(org, click.visitor_hash, since)
                if click.visitor_hash
                else []
            )
            visitor = [c for c in found if c.clicked_at <= at]  # a click after it did not bring it
            click = domain.credited_click(click, visitor)
            if click is None:
                reason = domain.SELF_CLICK_ONLY
            else:
                earlier = await self.store.customer_touches(org, body.customer_id)
                credits = domain.credit_split(domain.creditable_touches(click, visitor, earlier, since))
        conversion = domain.convert(reported, click, reason, credits, at)
        existing = await self.store.claim(conversion)
        if existing is not None:  # the same customer and type counts once
            return {**existing, "duplicate": True}
        self.outbox.nudge()
        if conversion.click is not None:
            await self.store.add_customer_touches(org, body.customer_id, [domain.touch(conversion.click)])
        return conversion.response

    async def erase_advocate(self, org: str, advocate_id: str) -> None:
        await self.store.erase_customer_touches(org, advocate_id)
