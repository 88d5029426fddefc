"""HTTP models of the rewards, redemptions and the fulfilment webhook."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, HttpUrl, StrictInt

from shared.fields import Line, Text
from shared.pagination import Page
from shared.schemas import RequestBody, ResponseBody
from shared.webhooks import schemas as webhooks
from shared.webhooks.engine import Delivery


class FulfilmentRequest(ResponseBody):
    """What Chorus POSTs to the fulfilment webhook when a redemption is approved (domain.py
    `fulfilment_request` writes it; a test holds the two together)."""

    type: Literal["chorus.redemption.approved"]
    delivery_id: str = Field(
        description="the first delivery's id: a replay carries the same body under a new X-Chorus-Delivery"
    )
    org: str = Field(description="the organisation")
    redemption_id: str
    reward_id: str
    reward_name: str
    advocate_id: str = Field(description="who redeemed it (their advocate id)")
    points: int = Field(description="what it cost them")


class RewardIn(RequestBody):
    name: Line = Field(min_length=1, max_length=120)
    description: Text = Field("", max_length=2000)
    cost: StrictInt = Field(ge=1, le=10_000_000, description="points")
    stock: StrictInt | None = Field(
        None, ge=0, le=10_000_000, description="units available; none = unlimited"
    )
    price_cents: StrictInt = Field(
        0, ge=0, le=100_000_000, description="what one unit costs the organisation"
    )
    budget_cents: StrictInt | None = Field(
        None, ge=0, le=10_000_000_000, description="most the organisation spends"
    )
    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$")


class RewardOut(ResponseBody):
    reward_id: str
    name: str
    description: str
    cost: int
    stock: int | None
    price_cents: int
    budget_cents: int | None
    budget_left_cents: int | None
    currency: str
    active: bool
    created_at: datetime


class RewardPage(Page[RewardOut]):
    pass


class RedemptionOut(ResponseBody):
    redemption_id: str
    reward_id: str
    reward_name: str
    advocate_id: str
    cost: int
    status: str
    note: str | None = None
    created_at: datetime
    updated_at: datetime


class RedemptionPage(Page[RedemptionOut]):
    pass


class RedemptionDecisionIn(RequestBody):
    note: Text | None = Field(None, max_length=1000)


class WebhookIn(RequestBody):
    url: HttpUrl
    secret: Line = Field(
        min_length=16, max_length=200, description="HMAC-SHA256 key; signatures are sha256=<hex>"
    )


class WebhookOut(ResponseBody):
    url: str
    configured: bool
    signature_header: str
    timestamp_header: str


class FulfilmentDeliveryOut(webhooks.DeliveryOut):
    """A fulfilment request to the organisation's webhook."""

    delivery_id: str = Field(
        description="the same as `id` (kept for clients written before it)", deprecated=True
    )
    url: str


def delivery_out(delivery: Delivery) -> FulfilmentDeliveryOut:
    fields = webhooks.delivery_fields(delivery)
    failed_status = delivery.last_status is not None and not 200 <= delivery.last_status < 300
    # An HTTP failure reads as before: its status, since the engine keeps no text for it.
    fields["last_error"] = delivery.last_error or (f"HTTP {delivery.last_status}" if failed_status else None)
    return FulfilmentDeliveryOut(**fields, delivery_id=delivery.id, url=delivery.url)


class FulfilmentDeliveryPage(Page[FulfilmentDeliveryOut]):
    pass
