"""HTTP models of the rewards, redemptions and the fulfilment webhook."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from pydantic import BaseModel, Field, HttpUrl, StrictInt

from services.recognition.web import RequestBody
from shared.pagination import Page
from shared.webhooks.engine import Delivery
from shared.webhooks.schemas import AttemptOut


class RewardIn(RequestBody):
    name: str = Field(min_length=1, max_length=120)
    description: str = Field("", max_length=2000)
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


class RewardOut(BaseModel):
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


class RedemptionOut(BaseModel):
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
    note: str | None = Field(None, max_length=1000)


class WebhookIn(RequestBody):
    url: HttpUrl
    secret: str = Field(
        min_length=16, max_length=200, description="HMAC-SHA256 key; signatures are sha256=<hex>"
    )


class WebhookOut(BaseModel):
    url: str
    configured: bool
    signature_header: str
    timestamp_header: str


class DeliveryOut(BaseModel):
    delivery_id: str
    url: str
    state: str = Field(description="pending, delivered, failed (gave up) or cancelled (no webhook)")
    attempts: int
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    created_at: datetime
    replay_of: str | None = Field(None, description="the delivery this one repeats, if replayed")
    log: list[AttemptOut] = Field(default_factory=list, description="every attempt, oldest first")


def delivery_out(delivery: Delivery) -> DeliveryOut:
    failed_status = delivery.last_status is not None and not 200 <= delivery.last_status < 300
    return DeliveryOut(
        delivery_id=delivery.id,
        url=delivery.url,
        state=str(delivery.state),
        attempts=delivery.attempts,
        # An HTTP failure reads as before: its status, since the engine keeps no text for it.
        last_error=delivery.last_error or (f"HTTP {delivery.last_status}" if failed_status else None),
        next_attempt_at=delivery.next_attempt_at,
        created_at=delivery.created_at,
        replay_of=delivery.replay_of,
        log=[AttemptOut(**asdict(a)) for a in delivery.log],
    )


class DeliveryPage(Page[DeliveryOut]):
    pass
