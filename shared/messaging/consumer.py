"""The consumer runner: batches, per-partition commits, bounded retries, dead letters, clean stop.

A service declares what it consumes in its handlers.py with a `Subscription`:

    subscription = Subscription(group="sharing")

    @subscription.on(ContentPublished)
    async def content_published(event: Event[ContentPublished]) -> None: ...

or, for a projector that carries heavy traffic, one batch handler per topic, called once per
poll with every record fetched from that topic (all its partitions), so that it can fold them
into one write per document:

    @subscription.on_batch(CLICKS)
    async def clicks(batch: Batch) -> None: ...

Delivery is at least once: a partition's offset is committed only after every record fetched
from it was handled (or dead-lettered), so handlers make their effects idempotent (see
shared/mongo.py). A record that still fails after `max_retries` goes to `<topic>.dlq` with the
error in its headers and the runner moves on. A record that is not a valid event goes to the
dead-letter topic at once; an event of a type this service does not handle is skipped.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Span, Status, StatusCode

from shared.events import DecodeError, Event, EventData, Topic, UnknownEventType, decode
from shared.events.envelope import AnyEvent
from shared.messaging.producer import EventProducer
from shared.messaging.tracing import start_process_span, tracing_enabled
from shared.settings import ChorusSettings

log = logging.getLogger(__name__)

# RED metrics per consumer (rate and errors from the counter, duration from the histogram) and
# lag per group and partition; exported over OTLP and on /metrics (shared/telemetry.py).
meter = metrics.get_meter("chorus.messaging")
PROCESS_DURATION = meter.create_histogram(
    "messaging.process.duration", unit="s", description="time to handle one record or batch"
)
CONSUMED = meter.create_counter(
    "chorus.consumer.events", description="events handled by a consumer group, by outcome"
)
_LAG: dict[tuple[str, str, int], int] = {}


def _observe_lag(options: CallbackOptions) -> Iterable[Observation]:
    for (group, topic, partition), lag in list(_LAG.items()):
        yield Observation(
            lag,
            {
                "messaging.consumer.group.name": group,
                "messaging.destination.name": topic,
                "messaging.destination.partition.id": str(partition),
            },
        )


meter.create_observable_gauge(
    "messaging.kafka.consumer.lag", callbacks=[_observe_lag], description="records behind the partition's end"
)

D = TypeVar("D", bound=EventData)
EventHandler = Callable[[Event[Any]], Awaitable[None]]


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


BatchHandler = Callable[[Batch], Awaitable[None]]


@dataclass
class Subscription:
    group: str
    handlers: dict[str, EventHandler] = field(default_factory=dict)
    handler_topics: dict[str, Topic] = field(default_factory=dict)
    batch_handlers: dict[str, BatchHandler] = field(default_factory=dict)
    # Per batch topic, the views its events are decoded as (see shared.events.decode).
    read_as: dict[str, tuple[type[EventData], ...]] = field(default_factory=dict)
    # Records fetched per poll, across partitions; None keeps the runner's default.
    max_batch: int | None = None

    def on(self, model: type[D]) -> Callable[[Callable[[Event[D]], Awaitable[None]]], EventHandler]:
        def register(handler: Callable[[Event[D]], Awaitable[None]]) -> EventHandler:
            self.handlers[model.event_type] = handler
            self.handler_topics[model.event_type] = model.topic
            return handler

        return register

    def on_batch(
        self, topic: Topic, read_as: tuple[type[EventData], ...] = ()
    ) -> Callable[[BatchHandler], BatchHandler]:
        """`read_as`: views to decode the topic's events as, when the handler reads only some
        fields of a busy topic's events (e.g. `CountedClick`)."""

        def register(handler: BatchHandler) -> BatchHandler:
            self.batch_handlers[topic.name] = handler
            self.read_as[topic.name] = read_as
            return handler

        return register

    @property
    def topics(self) -> list[str]:
        names = {t.name for t in self.handler_topics.values()} | set(self.batch_handlers)
        return sorted(names)


class ConsumerRunner:
    def __init__(
        self,
        settings: ChorusSettings,
        subscription: Subscription,
        dlq_producer: EventProducer,
        *,
        max_batch: int = 500,
        auto_offset_reset: str = "earliest",
    ) -> None:
        self._settings = settings
        self._sub = subscription
        self._dlq = dlq_producer
        self._max_batch = subscription.max_batch or max_batch
        self._auto_offset_reset = auto_offset_reset
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.processed = 0  # events handled (for tests and progress reporting)

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            *self._sub.topics,
            bootstrap_servers=self._settings.kafka_bootstrap,
            group_id=self.group_id,
            client_id=f"{self._settings.service_name}-{self._sub.group}",
            enable_auto_commit=False,
            auto_offset_reset=self._auto_offset_reset,
            isolation_level="read_committed",
            max_poll_records=self._max_batch,
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name=f"consumer:{self._sub.group}")

    async def stop(self) -> None:
        """Finish the batch in hand, commit it, then leave the group."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    @property
    def group_id(self) -> str:
        return f"{self._settings.consumer_group_prefix}.{self._sub.group}"

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        assert self._consumer is not None
        while not self._stopping.is_set():
            try:
                fetched = await self._consumer.getmany(timeout_ms=200, max_records=self._max_batch)
            except Exception:
                log.exception("consumer %s: poll failed; retrying", self._sub.group)
                await asyncio.sleep(1)
                continue
            by_topic: dict[str, dict[TopicPartition, list[ConsumerRecord[Any, Any]]]] = {}
            for tp, records in fetched.items():
                by_topic.setdefault(tp.topic, {})[tp] = records
            for topic, parts in by_topic.items():
                # Finish every fetched partition even when asked to stop: its effects are
                # applied and committed together, so a restart does not redo half a batch.
                batch_handler = self._sub.batch_handlers.get(topic)
                if batch_handler is not None:
                    delivered = [d for tp, records in parts.items() for d in await self._decode(tp, records)]
                    await self._handle_batch(batch_handler, topic, delivered)
                else:
                    for tp, records in parts.items():
                        await self._handle_one_by_one(await self._decode(tp, records))
                for tp, records in parts.items():
                    self._record_lag(tp, records[-1].offset)
                try:
                    await self._consumer.commit({tp: records[-1].offset + 1 for tp, records in parts.items()})
                except Exception as exc:
                    # The partitions moved to another member during the batch: it will redeliver
                    # from the last commit, and idempotent handlers make that harmless.
                    log.warning("consumer %s: commit of %s failed: %s", self._sub.group, list(parts), exc)

    def _record_lag(self, tp: TopicPartition, last_offset: int) -> None:
        assert self._consumer is not None
        try:
            highwater = self._consumer.highwater(tp)
        except AssertionError:
            return  # the partition was revoked by a rebalance while we worked on it
        if highwater is not None:
            _LAG[(self.group_id, tp.topic, tp.partition)] = max(0, highwater - last_offset - 1)

    async def _decode(
        self, tp: TopicPartition, records: list[ConsumerRecord[Any, Any]]
    ) -> list[tuple[Delivered, ConsumerRecord[Any, Any]]]:
        delivered: list[tuple[Delivered, ConsumerRecord[Any, Any]]] = []
        read_as = self._sub.read_as.get(tp.topic, ())
        for record in records:
            try:
                event = decode(record.value, ce_type_of(record.headers), read_as)
            except UnknownEventType:
                continue  # a newer producer's type: not ours to handle
            except DecodeError as exc:
                await self._dead_letter(record, exc, attempts=0)
                continue
            delivered.append(
                (Delivered(event, tp.topic, tp.partition, record.offset, record.headers or ()), record)
            )
        return delivered

    async def _handle_one_by_one(self, delivered: list[tuple[Delivered, ConsumerRecord[Any, Any]]]) -> None:
        for item, record in delivered:
            handler = self._sub.handlers.get(item.event.type)
            if handler is not None:
                await self._with_retries([(item, record)], functools.partial(handler, item.event))

    async def _handle_batch(
        self,
        handler: BatchHandler,
        topic: str,
        delivered: list[tuple[Delivered, ConsumerRecord[Any, Any]]],
    ) -> None:
        if not delivered:
            return
        batch = Batch(topic, [d for d, _ in delivered])
        if await self._with_retries(delivered, lambda: handler(batch), dead_letter=False):
            return
        # The batch keeps failing: handle its events one by one so only the bad ones go to the DLQ.
        for item, record in delivered:
            single = Batch(topic, [item])
            await self._with_retries([(item, record)], functools.partial(handler, single))

    async def _with_retries(
        self,
        items: Sequence[tuple[Delivered, ConsumerRecord[Any, Any]]],
        call: Callable[[], Awaitable[None]],
        *,
        dead_letter: bool = True,
    ) -> bool:
        """Run `call` under processing spans for `items`; retry; dead-letter on final failure."""
        attempts = self._settings.consumer_max_retries + 1
        error: Exception | None = None
        labels = {
            "messaging.consumer.group.name": self.group_id,
            "messaging.destination.name": items[0][0].topic,
        }
        for attempt in range(1, attempts + 1):
            spans = (
                [
                    start_process_span(d.event, d.topic, d.partition, d.offset, r.key, r.headers)
                    for d, r in items
                ]
                if tracing_enabled()
                else []
            )
            started = time.perf_counter()
            try:
                await _run_in_span(spans, call)
                PROCESS_DURATION.record(time.perf_counter() - started, labels)
                CONSUMED.add(len(items), {**labels, "outcome": "ok"})
                self.processed += len(items)
                return True
            except Exception as exc:
                PROCESS_DURATION.record(
                    time.perf_counter() - started, {**labels, "error.type": type(exc).__name__}
                )
                CONSUMED.add(len(items), {**labels, "outcome": "error"})
                error = exc
                log.warning(
                    "consumer %s: handler failed on %s[%s]@%s (attempt %s/%s): %s",
                    self._sub.group,
                    items[0][0].topic,
                    items[0][0].partition,
                    items[0][0].offset,
                    attempt,
                    attempts,
                    exc,
                )
                if attempt < attempts:
                    await asyncio.sleep(self._settings.consumer_retry_backoff_s * 2 ** (attempt - 1))
        if dead_letter and error is not None:
            CONSUMED.add(len(items), {**labels, "outcome": "dead_lettered"})
            for _, record in items:
                await self._dead_letter(record, error, attempts=attempts)
        return False

    async def _dead_letter(
        self, record: ConsumerRecord[Any, Any], error: Exception, *, attempts: int
    ) -> None:
        headers = [
            *(record.headers or ()),
            ("dlq_error_type", type(error).__name__.encode()),
            ("dlq_error_message", str(error)[:2000].encode()),
            ("dlq_error_trace", "".join(traceback.format_exception(error))[-4000:].encode()),
            ("dlq_original_topic", record.topic.encode()),
            ("dlq_original_partition", str(record.partition).encode()),
            ("dlq_original_offset", str(record.offset).encode()),
            ("dlq_consumer_group", self._sub.group.encode()),
            ("dlq_attempts", str(attempts).encode()),
        ]
        log.error(
            "consumer %s: %s[%s]@%s sent to %s.dlq: %s",
            self._sub.group,
            record.topic,
            record.partition,
            record.offset,
            record.topic,
            error,
        )
        await self._dlq.send_raw(f"{record.topic}.dlq", record.value, record.key, headers)


def ce_type_of(headers: Sequence[tuple[str, bytes]] | None) -> str | None:
    """The record's `ce_type` header: decoding with it saves reading the JSON twice."""
    if not headers:
        return None
    if headers[0][0] == "ce_type":  # where EventProducer puts it
        return headers[0][1].decode("utf-8", errors="replace")
    for name, value in headers:
        if name == "ce_type":
            return value.decode("utf-8", errors="replace")
    return None


async def _run_in_span(spans: list[Span], call: Callable[[], Awaitable[None]]) -> None:
    """Run `call` with the first span current; end all spans with the outcome."""
    from opentelemetry import trace

    try:
        if spans:
            with trace.use_span(spans[0], end_on_exit=False):
                await call()
        else:
            await call()
    except Exception as exc:
        for span in spans:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, str(exc)))
        raise
    finally:
        for span in spans:
            span.end()
