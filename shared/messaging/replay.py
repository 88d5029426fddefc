"""Reading a stretch of topics again: for rebuilds and webhook replays.

A `TopicRange` reads every partition of some topics from a starting point (offset 0, the first
record at or after a time, or where an earlier range ended) up to the end each partition had
when the range was opened. It has no consumer group and commits nothing, so it never moves a
service's own offsets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.events import DecodeError, EventData, decode
from shared.messaging.batch import Batch, Delivered
from shared.messaging.consumer import ce_type_of
from shared.messaging.topics import partitions_of, start_client
from shared.vault import Vault


class TopicRange:
    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[str],
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        after: Mapping[TopicPartition, int] | None = None,
        client_id: str = "chorus-replay",
        security: Mapping[str, Any] | None = None,
        vault: Vault | None = None,
    ) -> None:
        """`since` a time, or `after` the `end` of an earlier range (each partition's next
        offset); neither: from the beginning. `security`: the service's `kafka_security`
        options (none: the local plain listener). `vault`: reveals the events as a consumer
        does (none: they are read as they are on the topic, people as pseudonyms)."""
        if since is not None and after is not None:
            raise ValueError("a range starts at a time or after an earlier range, not both")
        self._bootstrap = bootstrap
        self._topics = list(topics)
        self._since = since
        self._until = until
        self._after = after
        self._client_id = client_id
        self._security = dict(security or {})
        self._vault = vault
        self.total = 0  # records in the range, known once opened
        self.end: dict[TopicPartition, int] = {}  # where the range ends, known once opened

    async def batches(
        self, max_records: int = 2000, read_as: tuple[type[EventData], ...] = ()
    ) -> AsyncIterator[Batch]:
        """Decoded events per partition, in offset order; undecodable records are skipped.
        `read_as`: views to decode events as (see `shared.events.decode`)."""
        consumer = AIOKafkaConsumer(
            *self._topics,  # subscribing is how the consumer learns the topics' partitions
            bootstrap_servers=self._bootstrap,
            enable_auto_commit=False,
            group_id=None,
            isolation_level="read_committed",
            client_id=self._client_id,
            **self._security,
        )
        await start_client(consumer)
        try:
            tps = partitions_of(consumer, self._topics)
            consumer.unsubscribe()
            consumer.assign(tps)
            start = await self._start_offsets(consumer, tps)
            end = await consumer.end_offsets(tps)
            if self._until is not None:
                until_ms = _kafka_time(self._until)
                found = await consumer.offsets_for_times({tp: until_ms for tp in tps})
                end = {tp: found[tp].offset if found.get(tp) else end[tp] for tp in tps}
            for tp in tps:
                consumer.seek(tp, start[tp])
            remaining = {tp for tp in tps if start[tp] < end[tp]}
            self.total = sum(max(0, end[tp] - start[tp]) for tp in tps)
            self.end = dict(end)
            while remaining:
                fetched = await consumer.getmany(*remaining, timeout_ms=500, max_records=max_records)
                for tp, records in fetched.items():
                    items = []
                    for record in records:
                        if record.offset >= end[tp]:
                            break
                        try:
                            event = decode(record.value, ce_type_of(record.headers), read_as)
                        except DecodeError:
                            continue
                        headers = record.headers or ()
                        items.append(Delivered(event, tp.topic, tp.partition, record.offset, headers))
                    if items and self._vault is not None:
                        await self._vault.reveal([item.event for item in items])
                    if items:
                        yield Batch(tp.topic, items)
                # By position, not by the last record: transaction markers take offsets too.
                for tp in list(remaining):
                    if await consumer.position(tp) >= end[tp]:
                        remaining.discard(tp)
        finally:
            await consumer.stop()

    async def _start_offsets(
        self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        beginning: dict[TopicPartition, int] = await consumer.beginning_offsets(tps)
        if self._after is not None:
            return {tp: max(self._after.get(tp, 0), beginning[tp]) for tp in tps}
        if self._since is None:
            return beginning
        since_ms = _kafka_time(self._since)
        found = await consumer.offsets_for_times({tp: since_ms for tp in tps})
        end: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        # No record at or after `since`: the partition has nothing in the range.
        return {tp: found[tp].offset if found.get(tp) else end[tp] for tp in tps}


def _kafka_time(at: datetime) -> int:
    """`at` in Kafka's milliseconds. Kafka takes no time before 1970 (aiokafka raises, and a webhook
    replay from 1900 failed), and nothing was sent then: such a time is the beginning."""
    return max(0, int(at.timestamp() * 1000))
