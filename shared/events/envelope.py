"""The CloudEvents 1.0 envelope (structured JSON mode) and the typed event registry.

An event type is a frozen pydantic model for the `data` part, declared with `@event(...)` in the
module of its topic. The registry maps the CloudEvents `type` to that model, its topic and the
data field that is the record key. Models ignore unknown fields so that a newer producer never
breaks an older consumer; within a schema version only additive changes are allowed.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.events.topics import Topic


class EventData(BaseModel):
    """Base of every event's `data`. Subclasses are registered with `@event`."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)
    event_type: ClassVar[str]
    topic: ClassVar[Topic]
    key_field: ClassVar[str]
    schema_version: ClassVar[int]

    def record_key(self) -> str:
        return str(getattr(self, self.key_field))


D = TypeVar("D", bound=EventData)


class Event(BaseModel, Generic[D]):
    """A CloudEvent whose data is the registered model for its type."""

    model_config = ConfigDict(frozen=True, extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: str
    source: str
    type: str
    time: datetime
    subject: str | None = None
    datacontenttype: str = "application/json"
    tenant: str = Field(min_length=1, description="the organisation id (CloudEvents extension)")
    schemaversion: str = Field("1", description="the data schema version (CloudEvents extension)")
    data: D

    @classmethod
    def create(
        cls,
        data: D,
        *,
        tenant: str,
        source: str,
        subject: str | None = None,
        time: datetime | None = None,
        event_id: str | None = None,
    ) -> Event[D]:
        model: Any = Event[type(data)]  # type: ignore[misc]
        event: Event[D] = model(
            id=event_id or str(uuid.uuid4()),
            source=source,
            type=data.event_type,
            time=time or datetime.now(UTC),
            subject=subject,
            tenant=tenant,
            schemaversion=str(data.schema_version),
            data=data,
        )
        return event

    @property
    def topic(self) -> Topic:
        return self.data.topic

    def record_key(self) -> bytes:
        return self.data.record_key().encode()

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


# Any event, whatever its data model (Event is invariant in D, as a frozen container should be).
AnyEvent = Event[Any]


@dataclass(frozen=True)
class Registration:
    event_type: str
    model: type[EventData]
    topic: Topic
    key_field: str
    schema_version: int
    envelope: Any  # Event[model], built once: parametrising a pydantic generic costs a few us


REGISTRY: dict[str, Registration] = {}


def offered_to_integrations() -> dict[str, Registration]:
    """The event types integrations may receive (webhooks): all but those of internal topics."""
    return {name: r for name, r in REGISTRY.items() if not r.topic.internal}


def event(
    event_type: str, *, topic: Topic, key: str, schema_version: int = 1
) -> Callable[[type[D]], type[D]]:
    """Register an event data model under its CloudEvents type."""

    def register(model: type[D]) -> type[D]:
        if event_type in REGISTRY:
            raise ValueError(f"event type {event_type} registered twice")
        if key not in model.model_fields:
            raise ValueError(f"{model.__name__} has no key field {key!r}")
        model.event_type = event_type
        model.topic = topic
        model.key_field = key
        model.schema_version = schema_version
        REGISTRY[event_type] = Registration(event_type, model, topic, key, schema_version, Event[model])  # type: ignore[valid-type]
        return model

    return register


class DecodeError(ValueError):
    """The record is not a valid Chorus event: it belongs in the dead-letter topic."""


class UnknownEventType(DecodeError):
    """A well-formed CloudEvent of a type this build does not know (a newer producer)."""


class _TypeOnly(BaseModel):
    type: str


def decode(
    value: bytes | None, type_hint: str | None = None, read_as: tuple[type[EventData], ...] = ()
) -> AnyEvent:
    """The typed event in a record's value.

    `type_hint` is the record's `ce_type` header, when it has one: it saves reading the type
    from the JSON first. pydantic parses and validates the JSON in one pass (about 10 us for a
    click, against 30 us for json.loads and a validation of the dict), which bounds what one
    consumer process can project.

    `read_as` names views: base classes of event models that declare only some of their fields
    (e.g. `CountedClick`). An event whose model is a subclass of one is decoded as that view,
    which skips building the other fields. A view is a base class, so the fields it reads are
    the event's own by construction.
    """
    if value is None:
        raise DecodeError("the record has no value")
    registration = REGISTRY.get(type_hint) if type_hint else None
    if registration is None:
        try:
            event_type = _TypeOnly.model_validate_json(value).type
        except ValidationError as exc:
            if any(e["type"] == "json_invalid" for e in exc.errors()):
                raise DecodeError(f"the record value is not JSON: {exc}") from exc
            raise DecodeError("the record value is not a CloudEvent: no 'type'") from exc
        registration = REGISTRY.get(event_type)
        if registration is None:
            raise UnknownEventType(f"unknown event type {event_type!r}")
    envelope = _envelope_as(registration.model, read_as) if read_as else registration.envelope
    try:
        decoded: AnyEvent = envelope.model_validate_json(value)
    except ValidationError as exc:
        raise DecodeError(f"invalid {registration.event_type} event: {exc}") from exc
    if decoded.type != registration.event_type:  # a header that does not match the body
        return decode(value, read_as=read_as)
    return decoded


@functools.cache
def _envelope_as(model: type[EventData], read_as: tuple[type[EventData], ...]) -> Any:
    """The envelope to decode `model`'s events with: of the first view it extends, or its own."""
    for view in read_as:
        if issubclass(model, view):
            return Event[view]  # type: ignore[valid-type]
    return REGISTRY[model.event_type].envelope


def json_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema of a whole CloudEvent of this type (envelope and data)."""
    registration = REGISTRY[event_type]
    schema: dict[str, Any] = registration.envelope.model_json_schema(by_alias=True)
    schema["$id"] = f"https://chorus.dev/events/{event_type}/v{registration.schema_version}.json"
    schema["title"] = event_type
    return schema
