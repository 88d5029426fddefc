"""Chorus integration events: the envelope, the registry and one module per topic.

Importing this package registers every event type, so `decode` knows them all.
"""

from shared.events import access, advocates, clicks, content, conversions, recognition, shares, training
from shared.events.envelope import (
    REGISTRY,
    AnyEvent,
    DecodeError,
    Event,
    EventData,
    UnknownEventType,
    decode,
    event,
)
from shared.events.topics import TOPICS, Topic

__all__ = [
    "REGISTRY",
    "TOPICS",
    "AnyEvent",
    "DecodeError",
    "Event",
    "EventData",
    "Topic",
    "UnknownEventType",
    "access",
    "advocates",
    "clicks",
    "content",
    "conversions",
    "decode",
    "event",
    "recognition",
    "shares",
    "training",
]
