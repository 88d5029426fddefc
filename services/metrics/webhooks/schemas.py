"""HTTP models of the webhooks API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from shared.clock import RequestTime
from shared.events.envelope import offered_to_integrations
from shared.webhooks.policy import URL_PATTERN
from shared.webhooks.schemas import AttemptOut

# The types an endpoint may subscribe to, stated in the document; domain.check_event_types refuses
# any other (422 naming event_types).
EventType = Annotated[str, WithJsonSchema({"type": "string", "enum": sorted(offered_to_integrations())})]


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(
        max_length=2000,
        pattern=URL_PATTERN,
        description="https URL that receives the POSTs (plain http only to loopback, in development); its"
        " host must not be, nor resolve to, a private or reserved address",
    )
    event_types: list[EventType] = Field(
        min_length=1, max_length=50, description="CloudEvents types, e.g. chorus.lead.captured"
    )
    description: str | None = Field(None, max_length=500)


class EndpointOut(BaseModel):
    id: str
    url: str
    event_types: list[str]
    description: str | None
    created_at: datetime


class EndpointCreated(EndpointOut):
    secret: str = Field(description="the signing secret; shown only now, keep it safe")


class EndpointList(BaseModel):
    items: list[EndpointOut]


class DeliveryOut(BaseModel):
    id: str
    event_id: str
    event_type: str
    event_time: datetime
    replay_id: str | None
    replay_of: str | None = Field(None, description="the delivery this one repeats, if replayed")
    state: str = Field(description="pending, delivered, failed (gave up) or cancelled")
    attempts: int
    last_status: int | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
    log: list[AttemptOut] = Field(default_factory=list, description="every attempt, oldest first")


class DeliveryList(BaseModel):
    items: list[DeliveryOut]


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    from_: RequestTime = Field(
        alias="from", description="start of the range (inclusive), by when events were sent"
    )
    to: RequestTime = Field(description="end of the range (exclusive)")

    @model_validator(mode="after")
    def ordered(self) -> ReplayIn:
        if self.from_.tzinfo is None or self.to.tzinfo is None:
            raise ValueError("from and to need a timezone, e.g. 2026-01-01T00:00:00Z")
        if self.to <= self.from_:
            raise ValueError("'to' must be after 'from'")
        return self


class ReplayOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    id: str
    endpoint_id: str
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    state: str = Field(description="running, done or failed")
    events: int = Field(description="deliveries created so far")
