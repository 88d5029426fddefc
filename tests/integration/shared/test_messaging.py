"""The messaging backbone on the real broker and SecantusDB."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaTimeoutError, UnknownMemberIdError
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from pymongo.errors import AutoReconnect

from shared.events import Event, decode
from shared.events.personal import is_pseudonym
from shared.events.topics import TRAINING
from shared.events.training import CourseCompleted, PolicyAcknowledged
from shared.messaging import ConsumerRunner, EventProducer, Subscription, ensure_topics, skip_history
from shared.messaging.producer import MAX_RECORD_BYTES, SENDS_PER_TURN, event_headers
from shared.messaging.replay import TopicRange
from shared.mongo import create_client
from shared.settings import ChorusSettings
from tests.helpers import eventually, new_org
from tests.integration.shared.tallies import (
    BREAKS_THE_TALLY,
    KILLS_THE_WORKER,
    Acknowledgements,
    acknowledgements,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def producer(settings: ChorusSettings) -> AsyncIterator[EventProducer]:
    await ensure_topics(settings.kafka_bootstrap)
    p = EventProducer(settings)
    await p.start()
    yield p
    await p.stop()


def ack(org: str, advocate: str, version: int = 1) -> Event[PolicyAcknowledged]:
    return Event.create(
        PolicyAcknowledged(advocate_id=advocate, policy_version=version), tenant=org, source="/tests"
    )


class DeadLetters:
    """Records of one organisation that reach a dead-letter topic from now on."""

    def __init__(self, settings: ChorusSettings, topic: str, org: str) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
        )
        self._tp = TopicPartition(topic, 0)
        self._org = org.encode()
        self.records: list[Any] = []

    async def __aenter__(self) -> DeadLetters:
        await self._consumer.start()
        self._consumer.assign([self._tp])
        await self._consumer.seek_to_end(self._tp)
        await self._consumer.position(self._tp)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def at_least(self, n: int) -> list[Any]:
        async def enough() -> bool:
            fetched = await self._consumer.getmany(self._tp, timeout_ms=500)
            self.records.extend(
                r for r in fetched.get(self._tp, []) if dict(r.headers).get("ce_tenant") == self._org
            )
            return len(self.records) >= n

        await eventually(enough, timeout_s=60)
        return self.records


async def test_an_event_published_is_consumed_with_its_type_and_tenant(
    settings: ChorusSettings, producer: EventProducer
) -> None:
    org = new_org()
    received: list[Event[CourseCompleted]] = []
    subscription = Subscription(group=f"roundtrip-{org}")

    @subscription.on(CourseCompleted)
    async def on_completed(event: Event[CourseCompleted]) -> None:
        if event.tenant == org:
            received.append(event)

    runner = ConsumerRunner(settings, subscription, producer)
    await runner.start()
    try:
        sent = Event.create(
            CourseCompleted(advocate_id="ann", course_id="c1", title="Basics"), tenant=org, source="/t"
        )
        await producer.publish(sent)
        await eventually(lambda: received)
        assert received == [sent]
    finally:
        await runner.stop()


async def test_a_long_publish_keeps_each_keys_order_on_the_broker_while_other_work_runs_between_sends(
    settings: ChorusSettings, producer: EventProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # That the producer itself turns the loop is tests/unit/shared/test_producer.py's to prove:
    # aiokafka lets other work in too, whenever a partition's batch is full, so the first
    # assertion below would hold without the producer's turn. This test proves what only the real
    # broker can: with the turns, each key's records still arrive in the order published.
    org = new_org()
    # Ten people, so the records spread over the partitions (aiokafka itself waits when one
    # partition's batch is full, which would let others in anyway).
    events = [ack(org, f"adv-{n % 10}", n) for n in range(1, 4 * SENDS_PER_TURN + 1)]
    send = producer.client.send
    sends = 0
    first_sent = asyncio.Event()

    async def counting_send(*args: Any, **kwargs: Any) -> Any:
        nonlocal sends
        sends += 1
        first_sent.set()
        return await send(*args, **kwargs)

    monkeypatch.setattr(producer.client, "send", counting_send)
    sent_when_other_work_ran: list[int] = []

    async def other_work() -> None:  # a server's request, say, waiting for its turn
        await first_sent.wait()  # (people are sealed first: a vault read lets anyone in)
        sent_when_other_work_ran.append(sends)

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(TRAINING.name, p) for p in range(TRAINING.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for partition in partitions:
            await consumer.position(partition)
        other = asyncio.create_task(other_work())
        await producer.publish_many(events)
        await other
        # It ran before the last send, not after all of them: the loop turned between sends.
        assert sent_when_other_work_ran and sent_when_other_work_ran[0] < len(events)
        seen: list[int] = []

        async def all_read() -> bool:
            fetched = await consumer.getmany(*partitions, timeout_ms=500)
            for records in fetched.values():
                for record in records:
                    event = decode(record.value)
                    if event.tenant == org and isinstance(event.data, PolicyAcknowledged):
                        seen.append(event.data.policy_version)
            return len(seen) >= len(events)

        await eventually(all_read, timeout_s=60)
        # Each person's records in the order published (one key, one partition).
        assert sorted(seen) == [e.data.policy_version for e in events]
        for person in range(10):
            theirs = [n for n in seen if n % 10 == person]
            assert theirs == sorted(theirs)
    finally:
        await consumer.stop()


async def started_at_end(
    settings: ChorusSettings, subscription: Subscription, producer: EventProducer
) -> ConsumerRunner:
    """A runner of `subscription` started from the training topic's end: what earlier tests left
    there is not its to handle."""
    group = f"{settings.consumer_group_prefix}.{subscription.group}"
    await skip_history(settings.kafka_bootstrap, group, [TRAINING.name])
    runner = ConsumerRunner(settings, subscription, producer)
    await runner.start()
    return runner


def recorded_acks(org: str, group: str, poison: str | None = None) -> tuple[Subscription, list[str]]:
    """A subscription to policy acknowledgements that records, in order, whom those of `org`
    name; the handler of one naming `poison` fails."""
    handled: list[str] = []
    subscription = Subscription(group=group)

    @subscription.on(PolicyAcknowledged)
    async def on_ack(event: Event[PolicyAcknowledged]) -> None:
        if event.tenant != org:
            return
        if event.data.advocate_id == poison:
            raise ValueError(f"cannot handle {event.data.advocate_id}")
        handled.append(event.data.advocate_id)

    return subscription, handled


async def test_a_handler_that_keeps_failing_dead_letters_its_record_and_the_consumer_goes_on(
    settings: ChorusSettings, producer: EventProducer
) -> None:
    org = new_org()
    handled: list[str] = []
    calls: dict[str, int] = {}
    subscription = Subscription(group=f"dlq-{org}")

    @subscription.on(PolicyAcknowledged)
    async def on_ack(event: Event[PolicyAcknowledged]) -> None:
        if event.tenant != org:
            return
        calls[event.data.advocate_id] = calls.get(event.data.advocate_id, 0) + 1
        if event.data.advocate_id == "poison":
            raise ValueError(f"cannot handle {event.data.advocate_id}")
        handled.append(event.data.advocate_id)

    runner = ConsumerRunner(settings, subscription, producer)
    await runner.start()
    try:
        async with DeadLetters(settings, TRAINING.dlq, org) as dead:
            # The poison record comes first; the next one must still be handled after it.
            await producer.publish(ack(org, "poison"))
            await producer.publish(ack(org, "after"))
            await eventually(lambda: "after" in handled)
            assert calls["poison"] == settings.consumer_max_retries + 1
            found = await dead.at_least(1)
            assert len(found) == 1
            headers = dict(found[0].headers)
            assert headers["dlq_error_type"] == b"ValueError"
            # The handler read the advocate's id; the dead letter, which outlives an erasure,
            # names them by their pseudonym, as the record itself does.
            pseudonym = decode(found[0].value).data.advocate_id
            assert is_pseudonym(pseudonym)
            assert headers["dlq_error_message"] == f"cannot handle {pseudonym}".encode()
            assert b"poison" not in headers["dlq_error_trace"]
            assert f"ValueError: cannot handle {pseudonym}".encode() in headers["dlq_error_trace"]
            assert headers["dlq_original_topic"] == TRAINING.name.encode()
            assert headers["dlq_attempts"] == str(settings.consumer_max_retries + 1).encode()
    finally:
        await runner.stop()


async def test_a_handler_waits_out_a_database_outage_however_many_attempts_it_takes(
    settings: ChorusSettings, producer: EventProducer
) -> None:
    org = new_org()
    calls: list[str] = []
    outage_calls = settings.consumer_max_retries + 3  # more failures than a bad record gets
    subscription = Subscription(group=f"outage-{org}")

    @subscription.on(PolicyAcknowledged)
    async def on_ack(event: Event[PolicyAcknowledged]) -> None:
        if event.tenant != org:
            return
        calls.append(event.data.advocate_id)
        if len(calls) <= outage_calls:
            raise AutoReconnect("no primary (an election)")

    fast = settings.model_copy(update={"consumer_retry_backoff_s": 0.01})
    runner = await started_at_end(fast, subscription, producer)
    try:
        async with DeadLetters(settings, TRAINING.dlq, org) as dead:
            await producer.publish(ack(org, "ann"))
            await producer.publish(ack(org, "bob"))
            await eventually(lambda: calls[-1:] == ["bob"])
            assert calls == ["ann"] * (outage_calls + 1) + ["bob"]
            await producer.send_raw(TRAINING.name, b"{not json", b"bad", [("ce_tenant", org.encode())])
            # Only the malformed record reached the dead-letter topic, not the events that waited.
            [found] = await dead.at_least(1)
            assert found.value == b"{not json"
    finally:
        await runner.stop()


async def test_skipping_history_waits_for_a_member_still_in_the_group_to_go(settings: ChorusSettings) -> None:
    # The broker takes no commit from outside a group that has members. A service stopped a
    # moment ago can leave one behind until its session expires; the next start must not fail.
    group = f"{settings.consumer_group_prefix}.skip-{new_org()}"
    await ensure_topics(settings.kafka_bootstrap)
    member = AIOKafkaConsumer(
        TRAINING.name, bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await member.start()
    try:
        await eventually(lambda: member.assignment())  # joined: the group has a member now
        tps = sorted(member.assignment())
        end = await member.end_offsets(tps)
        with pytest.raises((CommitFailedError, UnknownMemberIdError)):
            await skip_history(settings.kafka_bootstrap, group, [TRAINING.name], wait_s=0)
        member_goes = asyncio.get_running_loop().call_later(3, lambda: asyncio.ensure_future(member.stop()))
        try:
            await skip_history(settings.kafka_bootstrap, group, [TRAINING.name])
        finally:
            member_goes.cancel()
    finally:
        await member.stop()
    check = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await check.start()
    try:
        assert {tp: await check.committed(tp) for tp in tps} == end
    finally:
        await check.stop()


async def test_a_consumer_stopped_during_an_outage_leaves_its_poll_to_be_redelivered(
    settings: ChorusSettings, producer: EventProducer
) -> None:
    org = new_org()
    seen: list[tuple[str, bool]] = []  # (advocate, while the database was down)
    down = True
    subscription = Subscription(group=f"outage-stop-{org}")

    @subscription.on(PolicyAcknowledged)
    async def on_ack(event: Event[PolicyAcknowledged]) -> None:
        if event.tenant != org:
            return
        seen.append((event.data.advocate_id, down))
        if down:
            raise AutoReconnect("connection refused")

    group = f"{settings.consumer_group_prefix}.{subscription.group}"
    await skip_history(settings.kafka_bootstrap, group, [TRAINING.name])
    first = ConsumerRunner(settings, subscription, producer)
    await first.start()
    await producer.publish(ack(org, "ann"))
    await eventually(lambda: seen)
    await first.stop()
    assert first.processed == 0

    down = False
    second = ConsumerRunner(settings, subscription, producer)
    await second.start()
    try:
        await eventually(lambda: ("ann", False) in seen)
    finally:
        await second.stop()


async def test_a_malformed_record_goes_to_the_dead_letter_topic_without_retries(
    settings: ChorusSettings, producer: EventProducer
) -> None:
    org = new_org()
    subscription, handled = recorded_acks(org, f"malformed-{org}")
    runner = ConsumerRunner(settings, subscription, producer)
    await runner.start()
    try:
        await producer.send_raw(TRAINING.name, b"{not json", b"bad", [("ce_tenant", org.encode())])
        await producer.publish(ack(org, "good"))
        await eventually(lambda: handled == ["good"])
    finally:
        await runner.stop()


async def test_a_dead_letter_waits_out_a_broker_outage_and_the_consumer_goes_on(
    settings: ChorusSettings, producer: EventProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = new_org()
    subscription, handled = recorded_acks(org, f"dlq-outage-{org}", poison="poison")
    timeouts = 3
    send_raw = producer.send_raw

    async def dead_letter_topic_out(topic: str, value: bytes | None, key: bytes | None, headers: Any) -> None:
        nonlocal timeouts
        if topic == TRAINING.dlq and timeouts:
            timeouts -= 1
            raise KafkaTimeoutError("the dead-letter topic's leader cannot be reached")
        await send_raw(topic, value, key, headers)

    monkeypatch.setattr(producer, "send_raw", dead_letter_topic_out)
    fast = settings.model_copy(update={"consumer_retry_backoff_s": 0.01})
    runner = await started_at_end(fast, subscription, producer)
    try:
        async with DeadLetters(settings, TRAINING.dlq, org) as dead:
            await producer.publish(ack(org, "poison"))
            await producer.publish(ack(org, "after"))
            await eventually(lambda: "after" in handled)
            [found] = await dead.at_least(1)
            assert dict(found.headers)["dlq_error_type"] == b"ValueError"
            assert timeouts == 0 and runner.running
    finally:
        await runner.stop()


async def test_a_record_too_large_to_dead_letter_with_its_error_headers_is_dead_lettered_without_its_value(
    settings: ChorusSettings, producer: EventProducer
) -> None:
    org = new_org()
    subscription, handled = recorded_acks(org, f"dlq-too-large-{org}")
    # A malformed record as large as the producer sends: with the dead letter's error headers it
    # is too large.
    key, headers = b"big", [("ce_tenant", org.encode())]
    value = b"{" * MAX_RECORD_BYTES
    while DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers) > MAX_RECORD_BYTES:
        value = value[:-1]
    runner = await started_at_end(settings, subscription, producer)
    try:
        async with DeadLetters(settings, TRAINING.dlq, org) as dead:
            await producer.send_raw(TRAINING.name, value, key, headers)
            await producer.publish(ack(org, "after"))
            await eventually(lambda: handled == ["after"])
            [found] = await dead.at_least(1)
            found_headers = dict(found.headers)
            assert found_headers["dlq_error_type"] == b"DecodeError"
            assert found_headers["dlq_value_dropped_bytes"] == str(len(value)).encode()
            note = "the record was too large to dead-letter with its error headers; its value"
            note += f" ({len(value)} bytes) is left out"
            assert found.value == note.encode()
            assert found.key == key and found_headers["ce_tenant"] == org.encode()
    finally:
        await runner.stop()


async def test_a_record_whose_own_headers_leave_no_room_is_dead_lettered_with_those_that_fit(
    settings: ChorusSettings, producer: EventProducer
) -> None:
    org = new_org()
    subscription, handled = recorded_acks(org, f"dlq-big-headers-{org}")
    # A malformed record, small, whose own headers fill what the producer sends: the error
    # headers do not fit beside them even without its value. Dead-lettering it must not fail, or
    # the runner stops for good, and every restart meets the same record.
    key, value, tenant = b"big", b"{not json", ("ce_tenant", org.encode())

    def headers(filler: bytes) -> list[tuple[str, bytes]]:
        return [tenant, ("filler", filler)]

    filler = b"h" * MAX_RECORD_BYTES
    while DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers(filler)) > MAX_RECORD_BYTES:
        filler = filler[:-1]
    runner = await started_at_end(settings, subscription, producer)
    try:
        async with DeadLetters(settings, TRAINING.dlq, org) as dead:
            await producer.send_raw(TRAINING.name, value, key, headers(filler))
            await producer.publish(ack(org, "after"))
            await eventually(lambda: handled == ["after"])
            [found] = await dead.at_least(1)
            found_headers = dict(found.headers)
            # The headers the runner adds, and of the record's own those that fit beside them.
            assert found_headers["dlq_error_type"] == b"DecodeError"
            assert found_headers["dlq_original_offset"] and found_headers["dlq_value_dropped_bytes"] == b"9"
            assert found_headers["ce_tenant"] == org.encode() and "filler" not in found_headers
            assert found.key == key
            assert runner.ended_by is None
    finally:
        await runner.stop()


@contextlib.asynccontextmanager
async def tallied_consumer(
    settings: ChorusSettings, producer: EventProducer, group: str, handler: Callable[[Acknowledgements], None]
) -> AsyncIterator[None]:
    """A consumer of the training topic, from its current end, tallying with `acknowledgements`."""
    subscription = Subscription(group=group)

    @subscription.on_tally(TRAINING, tally=acknowledgements)
    async def on_tally(tally: Acknowledgements) -> None:
        handler(tally)

    await skip_history(settings.kafka_bootstrap, f"{settings.consumer_group_prefix}.{group}", [TRAINING.name])
    runner = ConsumerRunner(settings, subscription, producer)
    await runner.start()
    try:
        yield
    finally:
        await runner.stop()


async def test_a_tallied_topic_is_tallied_in_a_worker_process_and_its_invalid_records_are_dead_lettered(
    settings: ChorusSettings, producer: EventProducer
) -> None:
    org = new_org()
    tallies: list[Acknowledgements] = []

    def handled() -> list[str]:
        return [advocate for t in tallies for o, advocate, _, _ in t.acks if o == org]

    async with (
        tallied_consumer(settings, producer, f"tallied-{org}", tallies.append),
        DeadLetters(settings, TRAINING.dlq, org) as dead,
    ):
        await producer.publish(ack(org, "before"))
        await producer.send_raw(TRAINING.name, b"{not json", b"bad", [("ce_tenant", org.encode())])
        await producer.publish(ack(org, "after"))
        await eventually(lambda: len(handled()) == 2)
        assert sorted(handled()) == ["after", "before"]
        assert os.getpid() not in {t.worker_pid for t in tallies}
        [bad] = await dead.at_least(1)
        assert bad.value == b"{not json"
        assert dict(bad.headers)["dlq_error_type"] == b"DecodeError"
        assert dict(bad.headers)["dlq_attempts"] == b"0"


async def test_a_tallied_consumer_stopped_during_a_vault_outage_dead_letters_nothing_and_leaves_its_poll(
    settings: ChorusSettings, producer: EventProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = new_org()
    handled: list[str] = []
    vault_reads: list[str] = []
    dead_letters: list[bytes | None] = []
    subscription = Subscription(group=f"tally-outage-stop-{org}")

    @subscription.on_tally(TRAINING, tally=acknowledgements)
    async def on_tally(tally: Acknowledgements) -> None:
        handled.extend(advocate for o, advocate, _, _ in tally.acks if o == org)

    async def vault_out(of: str, pseudonyms: set[str]) -> dict[str, Any]:
        vault_reads.append(of)
        raise AutoReconnect("connection refused")

    send_raw = producer.send_raw

    async def recording(topic: str, value: bytes | None, key: bytes | None, headers: Any) -> None:
        if topic == TRAINING.dlq:
            dead_letters.append(value)
        await send_raw(topic, value, key, headers)

    fast = settings.model_copy(update={"consumer_retry_backoff_s": 0.01})
    await skip_history(
        settings.kafka_bootstrap, f"{settings.consumer_group_prefix}.{subscription.group}", [TRAINING.name]
    )
    monkeypatch.setattr(producer, "send_raw", recording)
    with monkeypatch.context() as outage:
        outage.setattr(producer.vault, "people", vault_out)
        first = ConsumerRunner(fast, subscription, producer)
        await first.start()
        await producer.publish(ack(org, "ann"))
        await eventually(lambda: org in vault_reads)
        await first.stop()
    assert dead_letters == [] and handled == []

    second = ConsumerRunner(fast, subscription, producer)
    await second.start()
    try:
        await eventually(lambda: handled == ["ann"])
    finally:
        await second.stop()
    assert dead_letters == []


async def test_a_record_that_kills_its_worker_or_breaks_the_tally_is_dead_lettered_and_the_rest_applied(
    settings: ChorusSettings, producer: EventProducer
) -> None:
    org = new_org()
    handled: list[str] = []

    def on_tally(tally: Acknowledgements) -> None:
        handled.extend(advocate for o, advocate, _, _ in tally.acks if o == org)

    async with (
        tallied_consumer(settings, producer, f"tally-crash-{org}", on_tally),
        DeadLetters(settings, TRAINING.dlq, org) as dead,
    ):
        # Published together, so that they are likely in one poll; however they are polled, each
        # bad record is found alone.
        await producer.publish_many(
            [ack(org, "first"), ack(org, KILLS_THE_WORKER), ack(org, BREAKS_THE_TALLY), ack(org, "last")]
        )
        await eventually(lambda: sorted(handled) == ["first", "last"], timeout_s=90)
        found = await dead.at_least(2)
        by_error = {dict(r.headers)["dlq_error_type"]: r for r in found}
        assert set(by_error) == {b"BrokenProcessPool", b"ValueError"}
        # A dead letter is the record as it came: its advocate sealed (shared/vault.py).
        killed, broke = decode(by_error[b"BrokenProcessPool"].value), decode(by_error[b"ValueError"].value)
        await producer.vault.reveal([killed, broke])
        assert killed.data.advocate_id == KILLS_THE_WORKER
        assert broke.data.advocate_id == BREAKS_THE_TALLY
        # The consumer goes on, with a worker of its own again.
        await producer.publish(ack(org, "later"))
        await eventually(lambda: "later" in handled, timeout_s=30)
        assert sorted(handled) == ["first", "last", "later"]


async def test_a_tally_worker_never_reveals_someone_erased_since_it_last_heard_of_them(
    settings: ChorusSettings,
) -> None:
    # A worker keeps what it is told of people. Once that is older than the vault's cache time it
    # still reveals with it, and the runner keeps the tally only if the vault still has them all.
    quick = settings.model_copy(update={"vault_cache_s": 0.2})
    org = new_org()
    handled: list[str] = []
    producer = EventProducer(quick)
    await producer.start()
    try:
        first, second = await producer.vault.seal([ack(org, "ann"), ack(org, "ann", version=2)])
        pseudonym = first.data.advocate_id
        assert is_pseudonym(pseudonym) and second.data.advocate_id == pseudonym

        def on_tally(tally: Acknowledgements) -> None:
            handled.extend(advocate for o, advocate, _, _ in tally.acks if o == org)

        async def send(event: Event[PolicyAcknowledged]) -> None:
            await producer.send_raw(
                TRAINING.name, event.to_json_bytes(), pseudonym.encode(), event_headers(event)
            )

        async with tallied_consumer(quick, producer, f"tally-erased-{org}", on_tally):
            await send(first)
            await eventually(lambda: handled == ["ann"])
            await producer.vault.shred_after(org, "ann", datetime.now(UTC))
            await asyncio.sleep(0.5)  # the worker's news of ann is old now
            await send(second)
            await eventually(lambda: len(handled) == 2)
        assert handled == ["ann", pseudonym]
    finally:
        await producer.stop()


async def test_a_tally_worker_outlives_neither_ctrl_c_nor_its_consumer() -> None:
    """Ctrl-C reaches the worker too (one process group) and must not stop it before its consumer
    has finished; a consumer killed outright must not leave its worker behind."""
    consumer = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.shared.tallies"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert consumer.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(consumer.stdout.readline), 60)
        [worker] = [int(pid) for pid in line.split()]
        os.kill(worker, signal.SIGINT)
        await asyncio.sleep(0.5)
        assert _alive(worker), "the worker stopped on Ctrl-C before its consumer"
        consumer.kill()
        consumer.wait()
        assert await eventually(lambda: not _alive(worker), timeout_s=10)
    finally:
        consumer.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


async def test_a_consumer_killed_mid_stream_and_restarted_applies_every_effect_exactly_once(
    settings: ChorusSettings, producer: EventProducer
) -> None:
    org = new_org()
    total = 300
    advocates = [f"adv-{i}" for i in range(6)]
    await producer.publish_many([ack(org, advocates[i % len(advocates)], i) for i in range(total)])

    env = dict(os.environ)
    env.update(
        {
            "CHORUS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "CHORUS_MONGO_URL": settings.mongo_url,
            "CHORUS_MONGO_DB_PREFIX": settings.mongo_db_prefix,
            "CHORUS_CONSUMER_GROUP_PREFIX": settings.consumer_group_prefix,
        }
    )
    command = [sys.executable, "-m", "tests.integration.shared.counting_consumer", org]
    mongo = create_client(settings)
    db = mongo[settings.database_name("messaging_tests")]
    try:
        first = subprocess.Popen(command, env=env)
        # Kill it hard (no chance to commit) once some, not all, effects are in.
        await eventually(lambda: db.effects.count_documents({"org": org}), timeout_s=60, interval_s=0.05)
        await eventually(
            lambda: _between(db.effects.count_documents({"org": org}), 20, total - 50),
            timeout_s=60,
            interval_s=0.02,
        )
        first.send_signal(signal.SIGKILL)
        first.wait()
        applied_before_restart = await db.effects.count_documents({"org": org})
        assert applied_before_restart < total

        second = subprocess.Popen(command, env=env)
        try:
            await eventually(
                lambda: _equals(db.effects.count_documents({"org": org}), total), timeout_s=90, interval_s=0.2
            )
            await asyncio.sleep(1)  # let any redelivered duplicates arrive
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=30)
        counters = {d["_id"]: d["n"] async for d in db.counters.find({"_id": {"$regex": f"^{org}:"}})}
        assert sum(counters.values()) == total
        assert counters == {f"{org}:{a}": total // len(advocates) for a in advocates}
    finally:
        await mongo.close()


async def _between(count: object, low: int, high: int) -> bool:
    value = await count  # type: ignore[misc]
    return bool(low <= value <= high)


async def _equals(count: object, expected: int) -> bool:
    return bool(await count == expected)  # type: ignore[misc]


async def test_a_topic_range_reads_to_its_end_and_the_next_range_starts_where_it_ended(
    settings: ChorusSettings, producer: EventProducer
) -> None:
    org = new_org()
    for version in (1, 2):
        await producer.publish(ack(org, "ann", version))

    async def versions_read(records: TopicRange) -> list[int]:
        return [
            item.event.data.policy_version
            async for batch in records.batches()
            for item in batch.items
            if item.event.tenant == org
        ]

    first = TopicRange(settings.kafka_bootstrap, [TRAINING.name])
    assert await versions_read(first) == [1, 2]
    assert first.total >= 2 and sum(first.end.values()) >= first.total
    await producer.publish(ack(org, "ann", 3))
    # Only what arrived since: a rebuild's catch-up after its swap relies on it.
    assert await versions_read(TopicRange(settings.kafka_bootstrap, [TRAINING.name], after=first.end)) == [3]
    with pytest.raises(ValueError):
        TopicRange(settings.kafka_bootstrap, [TRAINING.name], since=datetime.now(UTC), after=first.end)
    # A range from before 1970 (a webhook replay may ask for one) is read from the beginning.
    since_1900 = TopicRange(settings.kafka_bootstrap, [TRAINING.name], since=datetime(1900, 1, 1, tzinfo=UTC))
    assert await versions_read(since_1900) == [1, 2, 3]
    before_1970 = TopicRange(
        settings.kafka_bootstrap,
        [TRAINING.name],
        since=datetime(1900, 1, 1, tzinfo=UTC),
        until=datetime(1901, 1, 1, tzinfo=UTC),
    )
    assert await versions_read(before_1970) == []
