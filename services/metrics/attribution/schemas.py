"""HTTP models of the conversions API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from services.metrics.org_settings.schemas import PayableCurrency
from shared.clock import AwareRequestTime
from shared.fields import Line
from shared.schemas import RequestBody, ResponseBody


class ConversionIn(RequestBody):
    type: Literal["lead", "sale", "refund", "application", "hire"] = Field(
        description="a `refund` names the customer's sale by `order_id` and gives back up to what remains"
        " of it (each refund counts: send an Idempotency-Key to retry safely); a job `application` needs"
        " a click on a job opening; a `hire` names no click and is credited through its candidate's"
        " application"
    )
    click_id: Line | None = Field(None, max_length=200, description="the click id from the landing URL")
    customer_id: Line = Field(
        min_length=1,
        max_length=200,
        description="the integrator's id of the customer (the candidate, for talent)",
    )
    amount: Line | None = Field(
        None,
        max_length=40,
        description="sales only: a decimal string, e.g. '129.90', with no more decimals than the currency's"
        " minor unit (2 for EUR, 0 for JPY)",
    )
    currency: PayableCurrency | None = Field(None, description="sales only: ISO 4217 code, e.g. EUR")
    occurred_at: AwareRequestTime | None = Field(
        None,
        description="when it happened, if before now: inside the attribution window, not in the future;"
        " the reports count it on that day",
    )
    order_id: Line | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="sales only, required: the order; a customer's sale counts once per order, and"
        " each of their orders counts",
    )


class CreditOut(ResponseBody):
    advocate_id: str
    share_id: str
    last_touch: float
    linear: float


class ConversionOut(ResponseBody):
    conversion_id: str
    type: str
    customer_id: str
    attributed: bool
    reason: str | None = Field(None, description="why the conversion is unattributed")
    click_id: str | None
    share_id: str | None
    advocate_id: str | None
    content_id: str | None
    credits: list[CreditOut]
    amount: str | None
    currency: str | None
    order_id: str | None = None
    application_id: str | None = Field(None, description="a hire: the application it is credited through")
    sale_id: str | None = Field(None, description="a refund: the sale it gives back on")
    converted_at: datetime
    duplicate: bool = Field(
        description="already recorded (a lead: the same customer; a sale: the same customer and order);"
        " counted once"
    )
