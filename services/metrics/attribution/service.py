"""Use cases of attribution: record a conversion (the conversions API), and forget an erased
advocate's touches."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.metrics.attribution import domain
from services.metrics.attribution.domain import Reported
from services.metrics.attribution.schemas import ConversionIn
from services.metrics.attribution.store import AttributionStore
from services.metrics.org_settings.service import OrgSettingsService
from services.metrics.projections.domain import Click
from services.metrics.projections.service import ProjectionService
from shared.clock import Clock, utc_now
from shared.errors import Conflict
from shared.events.clicks import CLICK_ID_PATTERN
from shared.outbox import Outbox

REFUND_ATTEMPTS = 5
CLICK_POLL_S = 0.1  # how often a conversion waiting for its click looks for it


@dataclass(eq=False)
class AttributionService:
    store: AttributionStore
    projections: ProjectionService
    org_settings: OrgSettingsService
    outbox: Outbox
    clock: Clock = utc_now
    click_wait_s: float = 0.0  # MetricsSettings.conversion_click_wait_s

    async def record_conversion(self, org: str, body: ConversionIn) -> dict[str, Any]:
        amount, currency = domain.parse_money(body.type, body.amount, body.currency)
        order_id = domain.check_order(body.type, body.order_id)
        domain.check_click_named(body.type, body.click_id)
        reported = Reported(org, body.type, body.customer_id, body.click_id, amount, currency, order_id)
        window_days = self.org_settings.window_days(await self.org_settings.of(org))
        at = domain.conversion_time(body.occurred_at, self.clock(), window_days)
        if body.type == "refund":
            return await self._refund(reported, at)
        application_id = None
        if body.type == "hire":
            click, reason, credits, application_id = await self._through_application(org, body.customer_id)
        else:
            click, reason, credits = await self._through_click(org, body, at, window_days)
        conversion = domain.convert(reported, click, reason, credits, at, application_id)
        first = await self.store.claim(conversion)
        if first is not None:  # the same customer and type (a sale: and order) counts once
            # Perhaps the retry of a request that stopped before the customer's touch: write it.
            await self._touched(org, body.customer_id, first.click)
            return {**first.response, "duplicate": True}
        self.outbox.nudge()
        await self._touched(org, body.customer_id, conversion.click)
        return conversion.response

    async def _touched(self, org: str, customer_id: str, click: Click | None) -> None:
        """The customer was reached by the click a conversion was credited to (once per click)."""
        if click is not None and click.tracked:
            await self.store.add_customer_touch(org, customer_id, domain.touch(click))

    async def _refund(self, reported: Reported, at: datetime) -> dict[str, Any]:
        """Give back part of a sale. Two refunds of one sale at once: the second sees the first's
        total when it writes, and checks again."""
        assert reported.amount is not None and reported.currency is not None  # parse_money's
        sale_claim = domain.claim_id(reported.org, "sale", reported.customer_id, reported.order_id)
        for _ in range(REFUND_ATTEMPTS):
            sale = await self.store.recorded(reported.org, sale_claim)
            refunded = sale.refunded_units if sale else 0
            found = sale.response if sale else None
            answer = domain.refundable(found, refunded, reported.amount, reported.currency)
            click = sale.click if sale else None
            event, response = domain.refund(reported, answer, refunded, click, at)
            units = domain.revenue_units(reported.amount)
            if await self.store.refund(reported.org, sale_claim, refunded, units, event, click):
                self.outbox.nudge()
                return response
        raise Conflict("other refunds of this sale came in at the same time; retry")

    async def _through_click(
        self, org: str, body: ConversionIn, at: datetime, window_days: int
    ) -> tuple[Click | None, str | None, list[dict[str, Any]]]:
        """The click a conversion is credited to, why not, and the credit split."""
        since = domain.window_start(at, window_days)
        click = await self._click(org, body.click_id) if body.click_id else None
        domain.check_job(body.type, click)
        reason = domain.unattributed_reason(body.click_id, click, since, window_days, at)
        if reason is not None or click is None:
            return click, reason, []
        found = (
            await self.projections.visitor_clicks(org, click.visitor_hash, since)
            if click.visitor_hash
            else []
        )
        visitor = [c for c in found if c.clicked_at <= at]  # a click after it did not bring it
        credited = domain.credited_click(click, visitor)
        if credited is None:
            return None, domain.SELF_CLICK_ONLY, []
        earlier = await self.store.customer_touches(org, body.customer_id)
        return (
            credited,
            None,
            domain.credit_split(domain.creditable_touches(credited, visitor, earlier, since, at)),
        )

    async def _click(self, org: str, click_id: str) -> Click | None:
        """The click a conversion names. One the redirect made that is not indexed yet may still
        be on its way (spool, Kafka, the click index) when a form is sent right after the redirect:
        it is waited for, up to `click_wait_s`. An id of another shape is never waited for."""
        click = await self.projections.click(org, click_id)
        if click is not None or not CLICK_ID_PATTERN.fullmatch(click_id):
            return click
        deadline = time.monotonic() + self.click_wait_s
        while click is None and time.monotonic() < deadline:
            await asyncio.sleep(CLICK_POLL_S)
            click = await self.projections.click(org, click_id)
        return click

    async def _through_application(
        self, org: str, candidate: str
    ) -> tuple[Click | None, str | None, list[dict[str, Any]], str | None]:
        """A hire takes its candidate's application's click and credits."""
        application = await self.store.recorded(org, domain.claim_id(org, "application", candidate))
        if application is None:
            return None, domain.NO_APPLICATION, [], None
        application_id = application.response["conversion_id"]
        if application.click is None:
            return None, domain.UNATTRIBUTED_APPLICATION, [], application_id
        return application.click, None, list(application.response["credits"]), application_id

    async def erase_advocate(self, org: str, advocate_id: str) -> None:
        """The advocate leaves the customers' touches, the recorded conversions (their answers,
        replayed to a duplicate, and the clicks they were credited to) and stored answers."""
        await self.store.erase_customer_touches(org, advocate_id)
        for claim_id, recorded in await self.store.naming(org, advocate_id):
            await self.store.rewrite(
                org,
                claim_id,
                domain.answer_without(recorded.response, advocate_id),
                domain.click_without(recorded.click, advocate_id),
            )
        await self.store.forget_answers_naming(org, advocate_id)
