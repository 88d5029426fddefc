"""Trace context across Kafka: W3C `traceparent` in record headers, messaging semantic conventions.

We instrument produce and process ourselves rather than relying on the contrib aiokafka
instrumentation alone: its consumer span ends as soon as the record is fetched, so a handler's
work would not be inside it. Here the processing span is a child of the producer's span, which
is what lets one trace follow a share to the lead it produced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanKind

from shared.events.envelope import AnyEvent

tracer = trace.get_tracer("chorus.messaging")

Headers = list[tuple[str, bytes]]


# Event data fields that become `chorus.*` span attributes when an event carries them, so a
# trace can be searched by share, advocate, content or click.
ENTITY_ATTRIBUTES = {
    "share_id": "chorus.share",
    "advocate_id": "chorus.advocate",
    "content_id": "chorus.content",
    "click_id": "chorus.click",
}


def event_attributes(event: AnyEvent) -> dict[str, str]:
    """What a span says of the event itself (its id, type, organisation and entities)."""
    attributes = {
        "messaging.message.id": event.id,
        "cloudevents.event_type": event.type,
        "chorus.organisation": event.tenant,
    }
    for field, attribute in ENTITY_ATTRIBUTES.items():
        value = getattr(event.data, field, None)
        if isinstance(value, str):
            attributes[attribute] = value
    return attributes


def _attributes(topic: str, operation: str, key: str, of_event: dict[str, str]) -> dict[str, str | int]:
    return {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "messaging.operation.type": operation,
        "messaging.kafka.message.key": key,
        **of_event,
    }


@contextmanager
def produce_span(
    event: AnyEvent,
    headers: Headers,
    parent: otel_context.Context | None = None,
    links: Sequence[Link] = (),
) -> Iterator[Span]:
    """A PRODUCER span for one record; its context is injected into `headers`."""
    with tracer.start_as_current_span(
        f"send {event.topic.name}",
        context=parent,
        kind=SpanKind.PRODUCER,
        attributes=_attributes(event.topic.name, "send", event.data.record_key(), event_attributes(event)),
        links=links,
    ) as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        headers.extend((k, v.encode()) for k, v in carrier.items())
        yield span


def context_from_headers(headers: Sequence[tuple[str, bytes]] | None) -> otel_context.Context:
    carrier = {k: v.decode("latin-1") for k, v in headers or ()}
    return propagate.extract(carrier)


TRACEPARENT_LENGTH = 55  # 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>


def may_be_recorded(headers: Sequence[tuple[str, bytes]] | None) -> bool:
    """Whether the processing span of a record with these headers may be kept. The sampler is
    parent-based (shared.telemetry.sampler): a span in a trace begun elsewhere is kept as its
    traceparent's sampled flag says; one without a traceparent (or with one it cannot read)
    begins a trace, which the sample ratio decides when the span is made. A cheap look at the
    flag, for a batch consumer's every record."""
    for name, value in headers or ():
        if name == "traceparent":
            if len(value) != TRACEPARENT_LENGTH or value[52:53] != b"-":
                return True
            try:
                return bool(int(value[53:], 16) & 1)
            except ValueError:
                return True
    return True


def start_process_span(
    of_event: Callable[[], dict[str, str]],
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    headers: Sequence[tuple[str, bytes]] | None,
    links: Sequence[Link] = (),
) -> Span:
    """A CONSUMER span for processing one record, parented on the producer's context.

    `of_event` gives the event's own attributes (`event_attributes`), asked only for a span that
    is kept: batch consumers open one span per record, and most are no-op spans of unsampled
    traces. (The key is the record's: the event may be decoded as a view without its key field.)
    """
    span = tracer.start_span(
        f"process {topic}", context=context_from_headers(headers), kind=SpanKind.CONSUMER, links=links
    )
    if span.is_recording():
        span.set_attributes(
            _attributes(topic, "process", (key or b"").decode("utf-8", "replace"), of_event())
        )
        span.set_attribute("messaging.destination.partition.id", str(partition))
        span.set_attribute("messaging.kafka.offset", offset)
    return span


def tracing_enabled() -> bool:
    """Whether this process records spans at all (telemetry on). Without a tracer provider every
    span is a no-op, and a batch consumer need not build one per record (20,000 per poll)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def inject_current() -> dict[str, str]:
    """The current trace context as a W3C carrier, to keep with an entity (e.g. a share)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def extract(carrier: dict[str, str] | None) -> otel_context.Context:
    return propagate.extract(carrier or {})


def links_to(carrier: dict[str, str] | None) -> list[Link]:
    """A link to the span a carrier names (none for an empty carrier)."""
    context = trace.get_current_span(extract(carrier)).get_span_context()
    return [Link(context)] if context.is_valid else []
