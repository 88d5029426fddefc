"""Events on `chorus.conversions` (key: share id, or the conversion id when unattributed)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from shared.events.envelope import EventData, event
from shared.events.personal import PERSON, Personal
from shared.events.topics import CONVERSIONS


class Credit(EventData):
    advocate_id: Annotated[str, PERSON]
    share_id: str
    last_touch: float = Field(description="1.0 for the last click before the conversion, else 0")
    linear: float = Field(description="an equal share across all advocates whose clicks reached the customer")


class Conversion(EventData):
    conversion_id: str
    key: str = Field(description="share id when attributed, conversion id otherwise")
    click_id: str | None = None
    customer_id: str
    attributed: bool
    share_id: str | None = None
    advocate_id: Annotated[str | None, PERSON] = None
    content_id: str | None = None
    credits: list[Credit] = Field(default_factory=list)
    converted_at: datetime
    # Where the attributed share was made, so projections can group conversions like clicks.
    network: str | None = None
    team: Annotated[str | None, Personal(of="advocate_id")] = None
    tags: list[str] = Field(default_factory=list)


@event("chorus.lead.captured", topic=CONVERSIONS, key="key")
class LeadCaptured(Conversion):
    pass


@event("chorus.sale.recorded", topic=CONVERSIONS, key="key")
class SaleRecorded(Conversion):
    amount: str = Field(description="decimal as a string, e.g. '129.90'")
    currency: str = Field(description="ISO 4217 code")
    order_id: str | None = Field(
        None, description="the integrator's order id; one sale per customer and order (absent before 2026-12)"
    )


@event("chorus.sale.refunded", topic=CONVERSIONS, key="key")
class SaleRefunded(Conversion):
    """Part or all of a sale given back: it lowers revenue where the sale raised it (the same
    share, advocate, content and credits, on the day of the refund). `converted_at` is when the
    refund was recorded; `key` is the sale's, so a sale and its refunds stay in order. Since 2026-12."""

    sale_id: str = Field(description="the conversion id of the sale refunded")
    order_id: str
    amount: str = Field(description="decimal as a string: what this refund gives back")
    currency: str = Field(description="ISO 4217 code, the sale's")
    fully_refunded: bool = Field(
        False, description="nothing remains of the sale after this refund (since 2026-12-06)"
    )


@event("chorus.application.submitted", topic=CONVERSIONS, key="key")
class ApplicationSubmitted(Conversion):
    """A candidate (`customer_id`) applied to a job opening; attributed like a lead, once per
    candidate. Since 2026-12."""


@event("chorus.hire.made", topic=CONVERSIONS, key="key")
class HireMade(Conversion):
    """A candidate was hired: credited through the candidate's application (its share, advocate
    and credits), once per candidate. Since 2026-12."""

    application_id: str | None = Field(None, description="the application it is credited through, if any")
