"""What the webhook delivery APIs of every service show of a delivery and its attempts: one
shape for the engine's log (shared/webhooks/engine.py), which a service extends with what its
deliveries are about. And the signed headers of every delivery, for a service's OpenAPI document
to show its receivers (its `webhooks`)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import Header
from pydantic import Field

from shared.schemas import ResponseBody
from shared.webhooks.engine import Delivery
from shared.webhooks.signing import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER

# The headers of every webhook request, as the receiver's side of the OpenAPI document shows
# them (`app.webhooks` routes take them as parameters). docs/webhooks.md has the recipe.
SignedAt = Annotated[
    str,
    Header(
        alias=TIMESTAMP_HEADER,
        description="unix seconds when it was signed: refuse it more than 5 minutes from your clock",
    ),
]
Signature = Annotated[
    str,
    Header(
        alias=SIGNATURE_HEADER,
        description='"sha256=" and the hex HMAC-SHA256 of "<timestamp>." and the raw body, keyed by '
        "your secret: compare in constant time",
    ),
]
DeliveryId = Annotated[
    str, Header(alias=DELIVERY_HEADER, description="the same on every retry of one delivery: dedupe on it")
]
# What the receiver answers: Chorus reads only whether it is a 2xx.
RECEIVED: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Any 2xx: delivered. Any other answer, or none in time, is tried again with "
        "backoff (docs/webhooks.md)."
    }
}


class AttemptOut(ResponseBody):
    at: datetime
    status: int | None = Field(description="the HTTP status, or null when no response came")
    error: str | None = Field(description="why no response came (timeout, refused, ...)")
    duration_ms: int


class DeliveryOut(ResponseBody):
    id: str
    state: str = Field(description="pending, delivered, failed (gave up) or cancelled")
    attempts: int
    last_status: int | None = Field(None, description="the last attempt's HTTP status, if a response came")
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    created_at: datetime
    delivered_at: datetime | None = None
    replay_of: str | None = Field(None, description="the delivery this one repeats, if replayed")
    log: list[AttemptOut] = Field(default_factory=list, description="every attempt, oldest first")


def delivery_fields(delivery: Delivery) -> dict[str, Any]:
    """The engine's part of a delivery's answer, as `DeliveryOut` fields."""
    return {
        "id": delivery.id,
        "state": str(delivery.state),
        "attempts": delivery.attempts,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "next_attempt_at": delivery.next_attempt_at,
        "created_at": delivery.created_at,
        "delivered_at": delivery.delivered_at,
        "replay_of": delivery.replay_of,
        "log": [AttemptOut(**asdict(a)) for a in delivery.log],
    }
