"""Click pipeline benchmark: the metrics projector against a bare consume-and-commit loop.

1. Produce N click events (default 1,000,000) to a fresh topic `bench.clicks.<run>` (12 partitions,
   keyed by share id, like chorus.clicks).
2. Baseline: a bare aiokafka loop in its own group that fetches, and commits the fetched
   partitions' offsets after each fetch (as the ConsumerRunner does), without decoding. Events/s.
3. Projector: the real ConsumerRunner + Subscription.on_tally (domain.tally_events in the
   tally worker process) + ProjectionService.project_live, into a fresh database, in another group
   on the same topic. Events/s, and the ratio to the baseline; CPU per event of the consumer's
   process and of its worker.
   Steps 2 and 3 alternate for `--rounds` rounds; the ratio is the median of the rounds' ratios.
4. Freshness: clicks produced at 20% of the projector's rate for a while, by a process of their
   own (as the redirect's are); a poller reads the funnel through the real HTTP API (the
   service's router, in the projector's process over ASGI, as the service serves it) and records
   when each click became visible. p50 / p99 of click-to-visible latency.

Run: see bench/pipeline/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import random
import statistics
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.metrics.analytics.api import router
from services.metrics.attribution.store import OUTBOX_COLLECTIONS
from services.metrics.handlers import MAX_BATCH, PROJECTED_AS
from services.metrics.main import INDEXES
from services.metrics.modules import MetricsModules
from services.metrics.projections import domain
from services.metrics.projections.domain import Tally
from services.metrics.settings import MetricsSettings
from shared.app import Runtime, Wiring, create_service_app, tune_gc
from shared.auth import issue_dev_token
from shared.events import Topic
from shared.events.personal import Person, seal_value
from shared.messaging import ConsumerRunner, EventProducer, Subscription
from shared.messaging.producer import ce_headers
from shared.messaging.tracing import Headers
from shared.mongo import create_client, ensure_indexes
from shared.outbox import Outbox
from shared.vault import Vault

PARTITIONS = 12


ADVOCATES = 50


def advocate_ids(advocates: int = ADVOCATES) -> set[str]:
    return {f"adv{i}" for i in range(advocates)}


class ClickFactory:
    """Pre-shaped click events: 1 organisation, a few thousand shares, realistic cardinalities.
    With `people` (the vault's entries of the advocates), the clicks are sealed as the click
    relay's producer seals them: advocates as pseudonyms, teams encrypted (docs/erasure.md)."""

    def __init__(
        self,
        org: str,
        shares: int = 5000,
        advocates: int = ADVOCATES,
        contents: int = 20,
        people: Mapping[str, Person] | None = None,
    ) -> None:
        self.org = org
        self.rng = random.Random(7)
        self.people = dict(people or {})

        def sealed(advocate: str, team: str) -> tuple[str, str]:
            person = self.people.get(advocate)
            return (advocate, team) if person is None else (person.pseudonym, seal_value(person, team))

        self.shares = [
            (
                f"sh{i}",
                *sealed(f"adv{i % advocates}", f"team{i % advocates % 5}"),
                f"content{i % contents}",
                ("linkedin", "x", "facebook")[i % 3],
                [f"tag{i % 10}"] + ([f"tag{(i + 3) % 10}"] if i % 2 else []),
            )
            for i in range(shares)
        ]

    def make(self, n: int, clicked_at: datetime) -> tuple[bytes, bytes, Headers]:
        """A click record as the redirect's producer writes it: key, CloudEvent, ce_* headers."""
        share_id, advocate, team, content, network, tags = self.shares[self.rng.randrange(len(self.shares))]
        roll = self.rng.random()
        data = {
            "click_id": uuid.uuid4().hex,
            "share_id": share_id,
            "advocate_id": advocate,
            "content_id": content,
            "network": network,
            "clicked_at": clicked_at.isoformat(),
            "visitor_hash": f"v{n % 100000}",
            "bot": roll < 0.05,
            "self": 0.05 <= roll < 0.07,
            "unique": roll > 0.3,
            "team": team,
            "tags": tags,
        }
        event_id = uuid.uuid4().hex
        envelope = {
            "specversion": "1.0",
            "id": event_id,
            "source": "/bench",
            "type": "chorus.click.recorded",
            "time": clicked_at.isoformat(),
            "tenant": self.org,
            "schemaversion": "1",
            "datacontenttype": "application/json",
            "data": data,
        }
        headers = ce_headers("chorus.click.recorded", event_id, self.org)
        return share_id.encode(), json.dumps(envelope).encode(), headers


async def create_topic(bootstrap: str, name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(name, PARTITIONS, replication_factor=1),
                NewTopic(f"{name}.dlq", 1, replication_factor=1),
            ]
        )
    finally:
        await admin.close()


async def delete_topic(bootstrap: str, name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([name, f"{name}.dlq"])
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, factory: ClickFactory, n: int) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20, max_batch_size=262144)
    await producer.start()
    started = time.perf_counter()
    try:
        now = datetime.now(UTC)
        pending = []
        for i in range(n):
            key, value, headers = factory.make(i, now)
            pending.append(await producer.send(topic, value, key=key, headers=headers))
            if len(pending) >= 20000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return n / (time.perf_counter() - started)


async def bare_loop(bootstrap: str, topic: str, n: int, max_batch: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-bare-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=max_batch,
    )
    await consumer.start()
    seen = 0
    started: float | None = None
    try:
        while seen < n:
            fetched = await consumer.getmany(timeout_ms=200, max_records=max_batch)
            if not fetched:
                continue
            if started is None:
                started = time.perf_counter()
            seen += sum(len(records) for records in fetched.values())
            # One commit for every partition of the poll, as ConsumerRunner commits a topic's batch.
            await consumer.commit({tp: records[-1].offset + 1 for tp, records in fetched.items()})
    finally:
        await consumer.stop()
    return n / (time.perf_counter() - (started or time.perf_counter()))


def bench_settings(args: argparse.Namespace, run: str) -> MetricsSettings:
    return MetricsSettings(
        kafka_bootstrap=args.bootstrap,
        mongo_url=args.mongo,
        mongo_db_prefix=f"bench{run}",
        consumer_group_prefix=f"bench{run}",
        telemetry_enabled=False,
        otlp_endpoint=None,
        create_topics=False,
    )


async def projector_run(
    settings: MetricsSettings,
    service: MetricsModules,
    topic: Topic,
    n: int,
    max_batch: int,
    group: str = "projector",
) -> tuple[ConsumerRunner, EventProducer]:
    subscription = Subscription(group=group)

    @subscription.on_tally(topic, tally=domain.tally_events, read_as=PROJECTED_AS)
    async def clicks(tally: Tally) -> None:
        await service.projections.project_live(topic.name, tally)

    dlq = EventProducer(settings)
    await dlq.start()
    runner = ConsumerRunner(settings, subscription, dlq, max_batch=max_batch)
    await runner.start()
    return runner, dlq


async def measure_projector(
    settings: MetricsSettings,
    service: MetricsModules,
    topic: Topic,
    n: int,
    max_batch: int,
    max_s: float,
    group: str,
) -> tuple[float, int, float, float]:
    """Events/s of the projector over all `n` events, or over its first `max_s` seconds, and the
    CPU time per event of the consumer's process and of its tally worker (steadier than the rate
    on a shared machine, for comparing changes)."""
    runner, dlq = await projector_run(settings, service, topic, n, max_batch, group)
    started: float | None = None
    cpu_started = worker_cpu_started = 0.0
    last_report = time.perf_counter()
    try:
        while runner.processed < n:
            await asyncio.sleep(0.05)
            now = time.perf_counter()
            if started is None and runner.processed > 0:
                started, cpu_started, worker_cpu_started = now, time.process_time(), children_cpu_s()
            if started is not None and now - started >= max_s:
                break
            if now - last_report > 30:
                last_report = now
                print(f"  projector: {runner.processed}/{n}", flush=True)
        processed = runner.processed
        cpu_us = (time.process_time() - cpu_started) / max(processed, 1) * 1e6
        worker_cpu_us = (children_cpu_s() - worker_cpu_started) / max(processed, 1) * 1e6
        rate = processed / (time.perf_counter() - (started or time.perf_counter()))
        return rate, processed, cpu_us, worker_cpu_us
    finally:
        await runner.stop()
        await dlq.stop()


def children_cpu_s() -> float:
    """CPU seconds used so far by this process's live children (the projector's tally worker)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for child in multiprocessing.active_children():
        with contextlib.suppress(OSError), open(f"/proc/{child.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def produce_steadily(
    bootstrap: str,
    topic: str,
    org: str,
    people: dict[str, Person],
    rate: float,
    seconds: float,
    out: Connection,
) -> None:
    """Clicks at `rate` a second for `seconds`, in a process of its own as the redirect is (so the
    producer does not share the projector's event loop); sends back each click's send time
    (`time.monotonic`, one clock for every process on the machine)."""

    async def run() -> list[float]:
        factory = ClickFactory(org, people=people)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=0)
        await producer.start()
        sent: list[float] = []
        try:
            interval, start = 1.0 / rate, time.monotonic()
            for i in range(int(rate * seconds)):
                delay = start + i * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                key, value, headers = factory.make(i, datetime.now(UTC))
                sent.append(time.monotonic())
                await producer.send(topic, value, key=key, headers=headers)
            await producer.flush()
        finally:
            await producer.stop()
        return sent

    out.send(asyncio.run(run()))


async def measure_freshness(
    args: argparse.Namespace,
    settings: MetricsSettings,
    service: MetricsModules,
    topic: Topic,
    rate: float,
    factory: ClickFactory,
) -> dict[str, float]:
    """Clicks at `rate`/s for `args.freshness_s`; the API polled every few ms for the count."""

    async def wire(runtime: Runtime) -> Wiring:
        return Wiring(service=service)  # the routes over the bench's service; no extra consumers

    app = create_service_app(
        name="metrics", settings=settings, routers=[router], indexes=INDEXES, wire=wire, version="0"
    )
    token = issue_dev_token(settings, org=factory.org, sub="bench", roles=["admin"])
    runner, dlq = await projector_run(settings, service, topic, 0, args.max_batch, group="freshness")
    day = datetime.now(UTC).date().isoformat()
    sent: list[float] = []
    seen: list[tuple[float, int]] = []
    try:
        async with app.router.lifespan_context(app):
            logging.getLogger("httpx").setLevel(logging.WARNING)  # the lifespan set up INFO logging
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

                async def visible() -> int:
                    response = await client.get(
                        "/v1/funnel",
                        params={"from": day, "to": day},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    totals = response.json()["totals"]
                    return int(totals["clicks"] + totals["bot_clicks"] + totals["self_clicks"])

                baseline = await visible()
                stop, all_seen = asyncio.Event(), asyncio.Event()
                total = int(rate * args.freshness_s)

                async def poll() -> None:
                    while not stop.is_set():
                        count = await visible() - baseline
                        seen.append((time.monotonic(), count))
                        if count >= total:
                            all_seen.set()
                        await asyncio.sleep(args.poll_s)

                poller = asyncio.create_task(poll())
                receive, send = multiprocessing.get_context("spawn").Pipe(duplex=False)
                producer = multiprocessing.get_context("spawn").Process(
                    target=produce_steadily,
                    args=(
                        args.bootstrap,
                        topic.name,
                        factory.org,
                        factory.people,
                        rate,
                        args.freshness_s,
                        send,
                    ),
                )
                producer.start()
                sent = await asyncio.to_thread(receive.recv)  # when the producer is done
                await asyncio.to_thread(producer.join)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(all_seen.wait(), 60)
                stop.set()
                await poller
    finally:
        await runner.stop()
        await dlq.stop()
    latencies = []
    j = 0
    for i, t_sent in enumerate(sent):
        while j < len(seen) and seen[j][1] < i + 1:
            j += 1
        if j == len(seen):
            break
        latencies.append(seen[j][0] - t_sent)
    latencies.sort()
    if not latencies:
        return {"sent": len(sent), "visible": 0}
    return {
        "rate": rate,
        "sent": len(sent),
        "visible": len(latencies),
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    topic = Topic(f"bench.clicks.{run}", PARTITIONS, "share id", "benchmark clicks")
    fresh_topic = Topic(f"bench.fresh.{run}", PARTITIONS, "share id", "benchmark clicks at a steady rate")
    settings = bench_settings(args, run)
    org = f"bench-org-{run}"
    # The advocates' vault entries, in the bench's own database, where the projector's consumer
    # reveals them: the clicks are what the click relay would write.
    vault = Vault(settings)
    factory = ClickFactory(org, people=await vault.people_of(org, advocate_ids()))
    await vault.close()
    await create_topic(args.bootstrap, topic.name)
    mongo = create_client(settings)
    # Every projector round starts from an empty database of its own; freshness uses the last.
    databases: list[str] = []

    async def fresh_service(round_no: int) -> MetricsModules:
        db = mongo[f"{settings.database_name('metrics')}_r{round_no}"]
        databases.append(db.name)
        await ensure_indexes(db, INDEXES)
        return MetricsModules.build(settings, db, Outbox(db, OUTBOX_COLLECTIONS, EventProducer(settings)))

    tune_gc()  # as the service's lifespan does before its consumers start
    results: dict[str, Any] = {"events": args.events, "partitions": PARTITIONS, "max_batch": args.max_batch}
    rounds: list[dict[str, float]] = []
    try:
        print(f"producing {args.events} clicks to {topic.name}", flush=True)
        results["produce_eps"] = await produce(args.bootstrap, topic.name, factory, args.events)
        print(f"  {results['produce_eps']:.0f} events/s", flush=True)
        # Alternating rounds on the same topic, each in fresh consumer groups: the machine's load
        # moves both rates from minute to minute, so each round's ratio compares neighbours.
        for round_no in range(1, args.rounds + 1):
            bare = await bare_loop(args.bootstrap, topic.name, args.events, args.max_batch)
            service = await fresh_service(round_no)
            group = f"projector-{round_no}"
            projector, processed, cpu_us, worker_cpu_us = await measure_projector(
                settings, service, topic, args.events, args.max_batch, args.projector_s, group
            )
            rounds.append(
                {
                    "bare_eps": bare,
                    "projector_eps": projector,
                    "projector_events": processed,
                    "projector_cpu_us_per_event": cpu_us,
                    "worker_cpu_us_per_event": worker_cpu_us,
                }
            )
            print(
                f"round {round_no}: bare {bare:,.0f} events/s, projector {projector:,.0f} events/s"
                f" ({processed:,} events; CPU each: {cpu_us:.1f} us consumer, {worker_cpu_us:.1f} us worker),"
                f" ratio {projector / bare:.3f}",
                flush=True,
            )
        results["rounds"] = rounds
        results["bare_eps"] = statistics.median(r["bare_eps"] for r in rounds)
        results["projector_eps"] = statistics.median(r["projector_eps"] for r in rounds)
        results["ratio"] = statistics.median(r["projector_eps"] / r["bare_eps"] for r in rounds)
        print(
            f"medians: bare {results['bare_eps']:,.0f}, projector {results['projector_eps']:,.0f} events/s;"
            f" ratio {results['ratio']:.3f}",
            flush=True,
        )
        rate = args.load_fraction * results["projector_eps"]
        print(f"freshness at {rate:.0f} events/s for {args.freshness_s}s", flush=True)
        # A topic of its own, so the freshness consumer starts with no backlog.
        await create_topic(args.bootstrap, fresh_topic.name)
        results["freshness"] = await measure_freshness(args, settings, service, fresh_topic, rate, factory)
        print(f"freshness: {results['freshness']}", flush=True)
    finally:
        if not args.keep:
            for name in databases:
                await mongo.drop_database(name)
            await delete_topic(args.bootstrap, topic.name)
            with contextlib.suppress(Exception):
                await delete_topic(args.bootstrap, fresh_topic.name)
        await mongo.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--mongo", default="mongodb://127.0.0.1:27017/")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--max-batch", type=int, default=MAX_BATCH, dest="max_batch", help="records per poll (the service's)"
    )
    parser.add_argument("--load-fraction", type=float, default=0.2, dest="load_fraction")
    parser.add_argument("--freshness-s", type=float, default=20.0, dest="freshness_s")
    parser.add_argument("--poll-s", type=float, default=0.01, dest="poll_s")
    parser.add_argument(
        "--projector-s",
        type=float,
        default=float("inf"),
        dest="projector_s",
        help="measure the projector over at most this many seconds of the topic",
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating bare and projector rounds")
    parser.add_argument("--keep", action="store_true", help="keep the topic and database afterwards")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    results = asyncio.run(main_async(args))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
