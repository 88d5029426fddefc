"""`chorus rebuild metrics`: replay the topics from offset 0 into a fresh projection, then swap it in.

The replay folds the same batches through the same `MetricsService.project` as the live
consumer, into a new `stats_g<n>` collection. When it has caught up it points readers and the
live projector at the new generation, replays once more whatever arrived meanwhile (the
per-partition watermarks make the overlap with the live consumer harmless), and drops the old
generation. It reads Kafka with its own unnamed consumer (no group, no commits): it is a tool
beside the service, and it must not move the service's committed offsets.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.metrics.service import MetricsService
from services.metrics.settings import MetricsSettings
from services.metrics.store import ERASED, STATS_CACHE_S, stats_indexes
from shared.events import DecodeError, Topic, decode
from shared.messaging import Delivered, EventProducer
from shared.mongo import create_client, ensure_indexes

Progress = Callable[[int, int], None]  # (events replayed, events to replay)


@dataclass(frozen=True)
class RebuildResult:
    old_collection: str
    new_collection: str
    events: int


async def _replay(
    consumer: AIOKafkaConsumer,
    service: MetricsService,
    collection: str,
    tps: list[TopicPartition],
    progress: Progress,
    done_before: int,
) -> int:
    """Apply every record up to the current end of each partition; return how many were read."""
    end = await consumer.end_offsets(tps)
    start = {tp: await consumer.position(tp) for tp in tps}
    total = done_before + sum(max(end[tp] - start[tp], 0) for tp in tps)
    done = done_before
    progress(done, total)
    remaining = {tp for tp in tps if start[tp] < end[tp]}
    while remaining:
        fetched = await consumer.getmany(*remaining, timeout_ms=500, max_records=2000)
        for tp, records in fetched.items():
            items: list[Delivered] = []
            for record in records:
                try:
                    items.append(Delivered(decode(record.value), tp.topic, tp.partition, record.offset))
                except DecodeError:
                    continue  # the live consumer dead-lettered it; it counts for nothing
            await service.project(collection, tp.topic, items)
            done += len(records)
        # By position, not by the last record: transaction markers take offsets too.
        for tp in list(remaining):
            if await consumer.position(tp) >= end[tp]:
                remaining.discard(tp)
        progress(min(done, total), total)
    return done


async def _start_consumer(
    settings: MetricsSettings, topics: Sequence[Topic]
) -> tuple[AIOKafkaConsumer, list[TopicPartition]]:
    """A consumer without a group (it commits nothing), on every partition, at offset 0."""
    consumer = AIOKafkaConsumer(
        *(t.name for t in topics),  # subscribing fetches the topics' metadata at start
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        group_id=None,
        isolation_level="read_committed",
        client_id="chorus-metrics-rebuild",
    )
    await consumer.start()
    tps = [
        TopicPartition(t.name, p) for t in topics for p in sorted(consumer.partitions_for_topic(t.name) or ())
    ]
    if len(tps) < sum(t.partitions for t in topics):
        await consumer.stop()
        raise RuntimeError(f"could not see every partition of {[t.name for t in topics]}: {tps}")
    consumer.unsubscribe()
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    return consumer, tps


async def replay(settings: MetricsSettings, collection: str, progress: Progress) -> int:
    """Replay the topics from offset 0 into `collection` (as it is: watermarks make this a no-op
    on a projection that has already seen everything)."""
    mongo = create_client(settings)
    service = MetricsService(settings, mongo[settings.database_name("metrics")], EventProducer(settings))
    consumer, tps = await _start_consumer(settings, settings.projected_topics())
    try:
        return await _replay(consumer, service, collection, tps, progress, 0)
    finally:
        await consumer.stop()
        await mongo.close()


async def rebuild(settings: MetricsSettings, progress: Progress) -> RebuildResult:
    settings.service_name = "metrics-rebuild"
    mongo = create_client(settings)
    db = mongo[settings.database_name("metrics")]
    service = MetricsService(settings, db, EventProducer(settings))  # the producer is never started
    consumer, tps = await _start_consumer(settings, settings.projected_topics())
    try:
        new = await service.store.next_generation()
        await ensure_indexes(db, stats_indexes(new))
        done = await _replay(consumer, service, new, tps, progress, 0)
        old = await service.store.swap_stats(new)
        # Whatever the live consumer applied to the old generation while we swapped (it reads
        # the active generation at most STATS_CACHE_S old).
        await asyncio.sleep(2 * STATS_CACHE_S)
        done = await _replay(consumer, service, new, tps, progress, done)
        async for marker in db[ERASED].find({}):
            await service.store.delete_advocate_stats(new, marker["org"], marker["advocate_id"])
        if old != new:
            await service.store.drop_collection(old)
        return RebuildResult(old, new, done)
    finally:
        await consumer.stop()
        await mongo.close()


def progress_bar(done: int, total: int) -> None:
    width = 40
    filled = width * done // total if total else width
    percent = 100 * done // total if total else 100
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {percent:3d}% {done}/{total} events")
    sys.stderr.flush()


def main() -> int:
    result = asyncio.run(rebuild(MetricsSettings(), progress_bar))
    sys.stderr.write("\n")
    print(f"rebuilt {result.new_collection} from {result.events} events; dropped {result.old_collection}")
    return 0
