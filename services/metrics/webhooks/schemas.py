"""HTTP models of the webhooks API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import ConfigDict, Field, WithJsonSchema, model_validator

from shared.clock import RequestTime
from shared.events.envelope import Event, offered_to_integrations
from shared.fields import Text
from shared.schemas import RequestBody, ResponseBody
from shared.webhooks import schemas as webhooks
from shared.webhooks.engine import Delivery
from shared.webhooks.policy import URL_PATTERN

# The types an endpoint may subscribe to, stated in the document; domain.check_event_types refuses
# any other (422 naming event_types).
EventType = Annotated[str, WithJsonSchema({"type": "string", "enum": sorted(offered_to_integrations())})]


class EndpointIn(RequestBody):
    url: str = Field(
        max_length=2000,
        pattern=URL_PATTERN,
        description="https URL that receives the POSTs (plain http only to loopback, in development); its"
        " host must not be, nor resolve to, a private or reserved address",
    )
    event_types: list[EventType] = Field(
        min_length=1, max_length=50, description="CloudEvents types, e.g. chorus.lead.captured"
    )
    description: Text | None = Field(None, max_length=500)


class EndpointOut(ResponseBody):
    id: str
    url: str
    event_types: list[str]
    description: str | None
    created_at: datetime


class EndpointCreated(EndpointOut):
    secret: str = Field(description="the signing secret; shown only now, keep it safe")


class EndpointList(ResponseBody):
    items: list[EndpointOut]


class DeliveryOut(webhooks.DeliveryOut):
    """A delivery of one event to an endpoint (or of a replay covering it)."""

    event_id: str
    event_type: str
    event_time: datetime
    replay_id: str | None


def delivery_out(delivery: Delivery) -> DeliveryOut:
    return DeliveryOut(
        **webhooks.delivery_fields(delivery),
        event_id=delivery.meta["event_id"],
        event_type=delivery.meta["event_type"],
        event_time=delivery.meta["event_time"],
        replay_id=delivery.meta.get("replay_id"),
    )


class DeliveryList(ResponseBody):
    items: list[DeliveryOut]


class ReplayIn(RequestBody):
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


class ReplayOut(ResponseBody):
    model_config = ConfigDict(populate_by_name=True)
    id: str
    endpoint_id: str
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    state: str = Field(description="running, done or failed")
    events: int = Field(description="deliveries created so far")


class CloudEvent(Event[Any], ResponseBody):
    """An event as an integration webhook POSTs it: the CloudEvent (structured mode) that Chorus's
    services read, with its people revealed (docs/webhooks.md). `id` is the event's: dedupe on it."""

    type: EventType
    data: Any = Field(description="as docs/events/schemas/<type>.v<schemaversion>.json says")
