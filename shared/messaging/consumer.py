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

or, where decoding and folding a poll is the bottleneck, a tally: a pure function of the topic
and the poll's events, run in a worker process while the runner fetches the next poll, whose
result the handler writes (shared/messaging/offload.py):

    @subscription.on_tally(CLICKS, tally=domain.tally_events)
    async def clicks(tally: Tally) -> None: ...

Delivery is at least once: a partition's offset is committed only after every record fetched
from it was handled (or dead-lettered), so handlers make their effects idempotent (see
shared/mongo.py). A record that still fails after `max_retries` goes to `<topic>.dlq` with the
error in its headers and the runner moves on. A record that is not a valid event goes to the
dead-letter topic at once; an event of a type this service does not handle is skipped. A handler
that fails because MongoDB or Kafka is unreachable is not the record's fault: it is retried until
the outage ends, and a runner stopped meanwhile leaves that poll uncommitted. Any other error of
the runner's own work (a dead letter the broker refuses) stops it for good: `ended_by` says so,
and the service's liveness probe fails on it, so that the process is restarted (shared/app.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeAlias, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError, KafkaTimeoutError, MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Span, Status, StatusCode
from pymongo.errors import ConnectionFailure

from shared.events import AnyEvent, DecodeError, Event, EventData, Topic, UnknownEventType, decode
from shared.events.personal import Person, pseudonyms_in
from shared.messaging.batch import Batch, Delivered
from shared.messaging.offload import RawPartition, Tallied, Tallier, TallyRequest, TallyWorkers
from shared.messaging.producer import MAX_RECORD_BYTES, EventProducer
from shared.messaging.security import kafka_security
from shared.messaging.topics import start_client
from shared.messaging.tracing import (
    Headers,
    event_attributes,
    may_be_recorded,
    start_process_span,
    tracing_enabled,
)
from shared.settings import ChorusSettings

log = logging.getLogger(__name__)

# RED metrics per consumer (rate and errors from the counter, duration from the histogram) and
# lag per group and partition; exported over OTLP and on /metrics (shared/telemetry.py).
meter = metrics.get_meter("chorus.messaging")
# In seconds, from a record's milliseconds to a large batch's or tally's tens of seconds: the
# SDK's default boundaries are sized for milliseconds (everything under 5 s in one bucket).
PROCESS_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def process_duration_histogram(meter: metrics.Meter) -> metrics.Histogram:
    return meter.create_histogram(
        "messaging.process.duration",
        unit="s",
        description="time to handle one record or batch",
        explicit_bucket_boundaries_advisory=PROCESS_DURATION_BUCKETS,
    )


PROCESS_DURATION = process_duration_histogram(meter)
CONSUMED = meter.create_counter(
    "chorus.consumer.events", description="events handled by a consumer group, by outcome"
)
_LAG: dict[tuple[str, str, int], int] = {}
# The longest wait between attempts while a handler's database or broker is unreachable.
OUTAGE_BACKOFF_MAX_S = 5.0
# How long a fetch waits for records while a tallied poll is in a worker: the poll is written
# after the fetch, so this bounds what pipelining adds to the latency of a quiet topic.
AHEAD_WAIT_MS = 50


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
T = TypeVar("T")
EventHandler = Callable[[Event[Any]], Awaitable[None]]


BatchHandler = Callable[[Batch], Awaitable[None]]
TallyHandler = Callable[[Any], Awaitable[None]]
Record: TypeAlias = ConsumerRecord[Any, Any]
# What a processing span says of the event of the i-th record it covers (see start_process_span).
Describe = Callable[[int], dict[str, str]]


@dataclass
class Subscription:
    group: str
    handlers: dict[str, EventHandler] = field(default_factory=dict)
    handler_topics: dict[str, Topic] = field(default_factory=dict)
    batch_handlers: dict[str, BatchHandler] = field(default_factory=dict)
    # Per batch topic, the views its events are decoded as (see shared.events.decode).
    read_as: dict[str, tuple[type[EventData], ...]] = field(default_factory=dict)
    # Per tallied topic, the pure function run in a worker process on each poll, and the handler
    # of its result.
    tallied: dict[str, tuple[Tallier, TallyHandler]] = field(default_factory=dict)
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

    def on_tally(
        self, topic: Topic, tally: Tallier, read_as: tuple[type[EventData], ...] = ()
    ) -> Callable[[TallyHandler], TallyHandler]:
        """`tally(topic, events, reveal)` runs in a worker process on each poll of `topic`
        (decoded as `read_as`, people sealed: see shared/messaging/offload.py); the handler gets
        what it returns (never for a poll with no event of ours)."""

        def register(handler: TallyHandler) -> TallyHandler:
            self.tallied[topic.name] = (tally, handler)
            self.read_as[topic.name] = read_as
            return handler

        return register

    @property
    def topics(self) -> list[str]:
        names = {t.name for t in self.handler_topics.values()} | set(self.batch_handlers) | set(self.tallied)
        return sorted(names)


class _GivenUp(BaseException):
    """The runner was asked to stop while a handler waited out an outage: the poll in hand is
    left uncommitted. Not an Exception, so that no handler of a record's failure (a tally retried
    record by record, a dead letter) takes it for one."""


def is_outage(error: BaseException) -> bool:
    """Whether a handler failed because MongoDB or Kafka could not be reached (or was between
    primaries or leaders), rather than because of its record."""
    return isinstance(error, ConnectionFailure | KafkaTimeoutError) or (
        isinstance(error, KafkaError) and bool(error.retriable)
    )


class _Tallying(NamedTuple):
    """A poll of a tallied topic, in a worker process until the runner has fetched the next."""

    topic: str
    parts: dict[TopicPartition, list[Record]]
    raw: list[RawPartition]
    task: asyncio.Task[Tallied]


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
        # People confirmed by the vault since the last poll was sent to a worker (see _tally).
        self._news: dict[str, dict[str, Person]] = {}
        self._workers = TallyWorkers(settings.consumer_tally_processes if subscription.tallied else 0)
        # The error that stopped the runner for good (see `ended_by`).
        self._failure: Exception | None = None
        self.processed = 0  # events handled (for tests and progress reporting)

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            *self._sub.topics,
            bootstrap_servers=self._settings.kafka_bootstrap,
            group_id=self.group_id,
            client_id=f"{self._settings.service_name}-{self._sub.group}",
            enable_auto_commit=False,
            auto_offset_reset=self._auto_offset_reset,
            isolation_level="read_committed",
            max_poll_records=self._max_batch,
            **kafka_security(self._settings),
        )
        await start_client(consumer)
        self._consumer = consumer
        await self._workers.start()
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
        await asyncio.to_thread(self._workers.stop)

    @property
    def group_id(self) -> str:
        return f"{self._settings.consumer_group_prefix}.{self._sub.group}"

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def ended_by(self) -> str | None:
        """Why the runner stopped consuming without being asked to stop (the name of the error),
        or None: it runs, has not started (the broker not reached yet) or was stopped. An outage
        never ends it (it is waited out), so what did is an error it does not retry, and only a
        restart of the process brings it back: the service's /healthz fails (shared/app.py)."""
        task = self._task
        if task is None or not task.done() or self._stopping.is_set():
            return None
        if task.cancelled():
            return "CancelledError"
        return type(self._failure).__name__ if self._failure is not None else "ended"

    async def _run(self) -> None:
        ahead: list[_Tallying] = []
        try:
            await self._consume(ahead)
        except _GivenUp:
            for job in ahead:
                job.task.cancel()
            log.warning(
                "consumer %s: stopped during an outage; the polls in hand are not committed", self._sub.group
            )
        except Exception as exc:
            # Kept rather than raised: `stop` still leaves the group and stops the workers.
            self._failure = exc
            for job in ahead:
                job.task.cancel()
            log.exception(
                "consumer %s: stopped for good; the polls in hand are not committed, and /healthz"
                " fails until the process restarts",
                self._sub.group,
            )

    async def _consume(self, ahead: list[_Tallying]) -> None:
        assert self._consumer is not None
        # Polls of tallied topics handed to a worker (`ahead`, kept by the caller): each is applied
        # and committed after the next fetch, so the worker tallies one poll while this process
        # fetches the next.
        while ahead or not self._stopping.is_set():
            fetched: dict[TopicPartition, list[Record]] = {}
            if not self._stopping.is_set():
                try:
                    fetched = await self._consumer.getmany(
                        timeout_ms=AHEAD_WAIT_MS if ahead else 200, max_records=self._max_batch
                    )
                except Exception:
                    log.exception("consumer %s: poll failed; retrying", self._sub.group)
                    await asyncio.sleep(1)
                    if not ahead:
                        continue
            by_topic: dict[str, dict[TopicPartition, list[Record]]] = {}
            for tp, records in fetched.items():
                by_topic.setdefault(tp.topic, {})[tp] = records
            in_hand = len(ahead)
            for topic, parts in by_topic.items():
                if topic in self._sub.tallied:
                    ahead.append(self._start_tally(topic, parts))
                    continue
                # Finish every fetched partition even when asked to stop: its effects are
                # applied and committed together, so a restart does not redo half a batch.
                batch_handler = self._sub.batch_handlers.get(topic)
                if batch_handler is not None:
                    delivered = [d for tp, records in parts.items() for d in await self._decode(tp, records)]
                    await self._handle_batch(batch_handler, topic, delivered)
                else:
                    for tp, records in parts.items():
                        await self._handle_one_by_one(await self._decode(tp, records))
                await self._commit(parts)
            while in_hand:
                job = ahead.pop(0)
                in_hand -= 1
                await self._finish_tally(job)
                await self._commit(job.parts)

    async def _commit(self, parts: dict[TopicPartition, list[Record]]) -> None:
        assert self._consumer is not None
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

    async def _decode(self, tp: TopicPartition, records: list[Record]) -> list[tuple[Delivered, Record]]:
        decoded: list[tuple[AnyEvent, Record]] = []
        read_as = self._sub.read_as.get(tp.topic, ())
        for record in records:
            try:
                event = decode(record.value, ce_type_of(record.headers), read_as)
            except UnknownEventType:
                continue  # a newer producer's type: not ours to handle
            except DecodeError as exc:
                await self._dead_letter(record, exc, attempts=0)
                continue
            decoded.append((event, record))
        await self._through_outages("reveal", lambda: self._dlq.vault.reveal([e for e, _ in decoded]))
        return [
            (Delivered(event, tp.topic, tp.partition, record.offset, record.headers or ()), record)
            for event, record in decoded
        ]

    async def _through_outages(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """`call`, again while the vault's store or the broker is out (as handlers wait out an
        outage); any other error is a bug and stops the runner."""
        outages = 0
        while True:
            try:
                return await call()
            except Exception as exc:
                if not is_outage(exc):
                    raise
                outages += 1
                await self._wait_out(what, outages, exc)

    async def _wait_out(self, what: str, outages: int, exc: Exception) -> None:
        """Wait for the database or broker, longer each time, however long; asked to stop
        meanwhile, give the poll up uncommitted (whoever gets the partitions redelivers it)."""
        log.warning(
            "consumer %s: %s waits for an outage (%s so far): %s", self._sub.group, what, outages, exc
        )
        if self._stopping.is_set():
            raise _GivenUp from exc
        await asyncio.sleep(min(OUTAGE_BACKOFF_MAX_S, self._settings.consumer_retry_backoff_s * 2**outages))

    async def _handle_one_by_one(self, delivered: list[tuple[Delivered, Record]]) -> None:
        for item, record in delivered:
            handler = self._sub.handlers.get(item.event.type)
            if handler is not None:
                await self._with_retries(
                    [record], _describe_events([item]), functools.partial(handler, item.event)
                )

    async def _handle_batch(
        self, handler: BatchHandler, topic: str, delivered: list[tuple[Delivered, Record]]
    ) -> None:
        if not delivered:
            return
        items = [d for d, _ in delivered]
        records = [r for _, r in delivered]
        batch = Batch(topic, items)
        if await self._with_retries(
            records, _describe_events(items), lambda: handler(batch), dead_letter=False
        ):
            return
        # The batch keeps failing: handle its events one by one so only the bad ones go to the DLQ.
        for item, record in delivered:
            single = Batch(topic, [item])
            await self._with_retries([record], _describe_events([item]), functools.partial(handler, single))

    def _start_tally(self, topic: str, parts: dict[TopicPartition, list[Record]]) -> _Tallying:
        traced = tracing_enabled()
        raw = [
            RawPartition(
                tp.partition,
                [r.offset for r in records],
                [r.value for r in records],
                [_type_header(r.headers) for r in records],
                [may_be_recorded(r.headers) for r in records] if traced else None,
            )
            for tp, records in parts.items()
        ]
        task = asyncio.create_task(self._tally(topic, raw))
        return _Tallying(topic, parts, raw, task)

    async def _tally(self, topic: str, raw: list[RawPartition], *, alone: bool = False) -> Tallied:
        tallier, _ = self._sub.tallied[topic]
        news, self._news = self._news, {}
        request = TallyRequest(
            tallier,
            topic,
            raw,
            self._sub.read_as.get(topic, ()),
            people=news,
            people_ttl_s=self._settings.vault_cache_s,
        )
        tallied = await self._workers.tally(request, alone=alone)
        # The worker met people it was not told of, or revealed some with old news of them: look
        # them up. The tally holds when it needed no one new and each old piece of news is still
        # true (the worker gets the fresh news with the next poll); otherwise tally again, telling
        # it everyone looked up so far (any worker may take it).
        people: dict[str, dict[str, Person]] = {}
        absent: dict[str, frozenset[str]] = {}
        while tallied.unknown or tallied.stale:
            erased_meanwhile = False
            for org in tallied.unknown.keys() | tallied.stale.keys():
                asked = tallied.unknown.get(org, set()) | tallied.stale.get(org, set())
                found = await self._through_outages(
                    "vault read", functools.partial(self._dlq.vault.people, org, asked)
                )
                people.setdefault(org, {}).update(found)
                absent[org] = absent.get(org, frozenset()) | (asked - found.keys())
                erased_meanwhile |= not tallied.stale.get(org, set()) <= found.keys()
            if not tallied.unknown and not erased_meanwhile:
                for org, found in people.items():
                    self._news.setdefault(org, {}).update(found)
                break
            request = dataclasses.replace(request, people=people, absent=absent)
            tallied = await self._workers.tally(request, alone=alone)
        return tallied

    async def _finish_tally(self, job: _Tallying) -> None:
        records = [r for rs in job.parts.values() for r in rs]
        _, handler = self._sub.tallied[job.topic]
        try:
            tallied = await job.task
        except Exception as exc:
            # The tally itself failed (or killed its worker): find the records it fails on.
            log.warning("consumer %s: tally of %s failed: %s", self._sub.group, job.topic, exc)
            await self._tally_one_by_one(job.topic, job.raw, records, handler)
            return
        for position, message in tallied.invalid.items():
            await self._dead_letter(records[position], DecodeError(message), attempts=0)
        if tallied.tally is None:
            return
        accepted = (
            [r for i, r in enumerate(records) if i not in tallied.skipped] if tallied.skipped else records
        )
        if await self._with_retries(
            accepted, _describe_tallied(tallied), lambda: handler(tallied.tally), dead_letter=False
        ):
            return
        await self._tally_one_by_one(job.topic, job.raw, records, handler, skip=tallied.skipped)

    async def _tally_one_by_one(
        self,
        topic: str,
        raw: list[RawPartition],
        records: list[Record],
        handler: TallyHandler,
        skip: frozenset[int] = frozenset(),
    ) -> None:
        """Tally and handle each record alone, so that only the bad ones go to the DLQ."""
        singles = [
            RawPartition(
                part.partition,
                [offset],
                [value],
                [type_header],
                None if part.traced is None else [part.traced[index]],
            )
            for part in raw
            for index, (offset, value, type_header) in enumerate(
                zip(part.offsets, part.values, part.types, strict=True)
            )
        ]
        for position, (single, record) in enumerate(zip(singles, records, strict=True)):
            if position in skip:
                continue
            try:
                # Alone: a record that kills the worker must not take another poll's tally with it.
                tallied = await self._tally(topic, [single], alone=True)
            except Exception as exc:
                await self._dead_letter(record, exc, attempts=1)
                continue
            if tallied.invalid:
                await self._dead_letter(record, DecodeError(tallied.invalid[0]), attempts=0)
            if tallied.tally is not None:
                await self._with_retries(
                    [record], _describe_tallied(tallied), functools.partial(handler, tallied.tally)
                )

    async def _with_retries(
        self,
        records: Sequence[Record],
        describe: Describe,
        call: Callable[[], Awaitable[None]],
        *,
        dead_letter: bool = True,
    ) -> bool:
        """Run `call` under processing spans for `records`; retry; dead-letter on final failure."""
        attempts = self._settings.consumer_max_retries + 1
        error: Exception | None = None
        labels = {
            "messaging.consumer.group.name": self.group_id,
            "messaging.destination.name": records[0].topic,
        }
        attempt = outages = 0
        while attempt < attempts:
            spans = (
                [
                    start_process_span(
                        functools.partial(describe, i), r.topic, r.partition, r.offset, r.key, r.headers
                    )
                    for i, r in enumerate(records)
                ]
                if tracing_enabled()
                else []
            )
            started = time.perf_counter()
            try:
                await _run_in_span(spans, call)
                PROCESS_DURATION.record(time.perf_counter() - started, labels)
                CONSUMED.add(len(records), {**labels, "outcome": "ok"})
                self.processed += len(records)
                return True
            except Exception as exc:
                PROCESS_DURATION.record(
                    time.perf_counter() - started, {**labels, "error.type": type(exc).__name__}
                )
                CONSUMED.add(len(records), {**labels, "outcome": "error"})
                if is_outage(exc):
                    # Not the records' fault: rather than dead-letter good events, wait.
                    outages += 1
                    where = f"{records[0].topic}[{records[0].partition}]@{records[0].offset}"
                    await self._wait_out(where, outages, exc)
                    continue
                attempt += 1
                error = exc
                log.warning(
                    "consumer %s: handler failed on %s[%s]@%s (attempt %s/%s): %s",
                    self._sub.group,
                    records[0].topic,
                    records[0].partition,
                    records[0].offset,
                    attempt,
                    attempts,
                    exc,
                )
                if attempt < attempts:
                    await asyncio.sleep(self._settings.consumer_retry_backoff_s * 2 ** (attempt - 1))
        if dead_letter and error is not None:
            CONSUMED.add(len(records), {**labels, "outcome": "dead_lettered"})
            for record in records:
                await self._dead_letter(record, error, attempts=attempts)
        return False

    async def _dead_letter(self, record: Record, error: Exception, *, attempts: int) -> None:
        trace = "".join(traceback.format_exception(error))
        message, trace = await self._without_people(record, str(error), trace)
        added: Headers = [
            ("dlq_error_type", type(error).__name__.encode()),
            ("dlq_error_message", message[:2000].encode()),
            ("dlq_error_trace", trace[-4000:].encode()),
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
            message,
        )
        topic, where = f"{record.topic}.dlq", f"{record.topic}[{record.partition}]@{record.offset}"

        async def send(value: bytes | None, key: bytes | None, headers: Headers) -> None:
            # The record is committed only once its dead letter is out: wait out an outage.
            await self._through_outages(
                f"dead letter of {where}", lambda: self._dlq.send_raw(topic, value, key, headers)
            )

        try:
            await send(record.value, record.key, [*(record.headers or ()), *added])
        except MessageSizeTooLargeError:
            # The error headers pushed a record near the size limit over it. Failing again would
            # stop the runner, and the restart meet the same record: send one that cannot be too
            # large instead.
            await send(*_fitting_dead_letter(record, added))

    async def _without_people(self, record: Record, *texts: str) -> list[str]:
        """`texts` (an error's message and trace) with the ids of the people the record names
        replaced by their pseudonyms: its handler read them revealed, and a dead letter must
        not keep an erased person readable."""
        try:
            event = decode(record.value, ce_type_of(record.headers))
        except DecodeError:
            return list(texts)  # not an event: nothing of it was revealed
        pseudonyms = pseudonyms_in(event.data)
        if not pseudonyms:
            return list(texts)
        people = await self._through_outages(
            "vault read", functools.partial(self._dlq.vault.people, event.tenant, pseudonyms)
        )
        # Longest first, so that an id inside another is not replaced in part.
        subs = sorted(people.values(), key=lambda person: len(person.sub), reverse=True)
        out = []
        for text in texts:
            for person in subs:
                text = text.replace(person.sub, person.pseudonym)
            out.append(text)
        return out


def _fitting_dead_letter(record: Record, added: Headers) -> tuple[bytes, bytes | None, Headers]:
    """The value, key and headers of a dead letter of `record` that is not too large: a note for
    its value, the headers the runner adds (some 25 KB at most: their texts are cut), and its own
    key and headers as far as they fit beside them, in order (the CloudEvents ones come first).
    The record itself stays in its topic, where the added headers say."""
    size = len(record.value or b"")
    note = f"the record was too large to dead-letter with its error headers; its value ({size} bytes)"
    value = f"{note} is left out".encode()
    added = [*added, ("dlq_value_dropped_bytes", str(size).encode())]

    def fits(key: bytes | None, headers: Headers) -> bool:
        size: int = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
        return size <= MAX_RECORD_BYTES

    key = record.key if fits(record.key, added) else None
    own: Headers = []
    for header in record.headers or ():
        if fits(key, [*own, header, *added]):
            own.append(header)
    return value, key, [*own, *added]


def ce_type_of(headers: Sequence[tuple[str, bytes]] | None) -> str | None:
    """The record's `ce_type` header: decoding with it saves reading the JSON twice."""
    value = _type_header(headers)
    return value.decode("utf-8", errors="replace") if value is not None else None


def _type_header(headers: Sequence[tuple[str, bytes]] | None) -> bytes | None:
    if not headers:
        return None
    if headers[0][0] == "ce_type":  # where EventProducer puts it
        return headers[0][1]
    for name, value in headers:
        if name == "ce_type":
            return value
    return None


def _describe_events(items: Sequence[Delivered]) -> Describe:
    return lambda i: event_attributes(items[i].event)


def _describe_tallied(tallied: Tallied) -> Describe:
    attributes = tallied.span_attributes
    return lambda i: attributes[i] if attributes is not None else {}


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
