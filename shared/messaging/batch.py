"""What a batch handler receives: a poll's decoded events with where each came from.

Apart from the runner so that pure code (a service's domain, run in a worker process) can fold
batches without the Kafka client.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, TypeVar

from shared.events.envelope import AnyEvent, EventData

D = TypeVar("D", bound=EventData)


class Delivered(NamedTuple):
    """One decoded event with where it came from. (A tuple: a poll makes tens of thousands.)"""

    event: AnyEvent
    topic: str
    partition: int
    offset: int
    headers: Sequence[tuple[str, bytes]] = ()

    def trace_carrier(self) -> dict[str, str]:
        """The W3C trace context the producer sent, to keep with what this event created."""
        return {k: v.decode("latin-1") for k, v in self.headers if k in ("traceparent", "tracestate")}


@dataclass(frozen=True)
class Batch:
    """The events fetched from one topic in one poll: each partition's in offset order."""

    topic: str
    items: list[Delivered]

    @property
    def events(self) -> list[AnyEvent]:
        return [d.event for d in self.items]


class Reveal(Protocol):
    """How a tally reveals the people in one event's data, in place: a worker hands a tally its
    poll's events sealed, to be revealed as the tally keeps them (shared/messaging/offload.py)."""

    def __call__(self, org: str, data: D, /) -> D: ...


def as_revealed(org: str, data: D) -> D:
    """The `Reveal` of events revealed already (a batch the runner delivered, a rebuild's)."""
    return data
