"""What the webhook delivery APIs of every service show of a delivery and its attempts: one
shape for the engine's log (shared/webhooks/engine.py), which a service extends with what its
deliveries are about."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from pydantic import Field

from shared.schemas import ResponseBody
from shared.webhooks.engine import Delivery


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
