"""Benchmark the click relay's drain (spool file -> Kafka) against a bare producer, in one run.

    python bench/redirect/drain.py [--clicks 8000] [--visitors 2000] [--batch 20] [--rounds 3]
                                   [--telemetry on|off]

Needs a running stack (Kafka, SecantusDB), found from the CHORUS_* variables like the services do.
Each round fills a fresh spool with `--clicks` clicks made by the real redirect (its ASGI app
called in this process, `--visitors` distinct visitors on one share), then times
`ClickRelay.drain_once` until the file is empty: reading the file, deciding unique visitors
against the seen-visitors collection, the spans, sealing and publishing with acks=all, deleting
the acknowledged rows. The baseline, alternated with it, sends the same events as the relay
would put on the topic, already serialised, from a bare aiokafka producer with the same
durability (acks=all, idempotent) as fast as it takes them: what Kafka takes from one Python
process. The ratio (relay / baseline) is the share of that the relay reaches.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.redirect.run import BROWSER, CODE, seed_share  # noqa: E402
from devtools.local_stack import StackConfig  # noqa: E402
from services.sharing.redirect.app import RedirectApp  # noqa: E402
from services.sharing.redirect.spool import ClickRelay, ClickSpool, click_event  # noqa: E402
from services.sharing.redirect.store import SeenVisitorsStore  # noqa: E402
from services.sharing.settings import SERVICE, SharingSettings  # noqa: E402
from services.sharing.shares.store import SharesStore  # noqa: E402
from shared.events.topics import CLICKS  # noqa: E402
from shared.messaging.producer import event_headers  # noqa: E402
from shared.messaging.topics import ensure_topics  # noqa: E402
from shared.messaging.tracing import Headers  # noqa: E402
from shared.mongo import create_client  # noqa: E402
from shared.telemetry import setup_telemetry  # noqa: E402
from shared.vault import Vault  # noqa: E402


async def fill(redirect: RedirectApp, spool: ClickSpool, clicks: int, visitors: int) -> None:
    """`clicks` redirects of the share by `visitors` visitors (by IP address), committed to the file."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 302:
            raise RuntimeError(f"the redirect answered {message['status']}")

    for i in range(clicks):
        scope = {
            "type": "http",
            "method": "GET",
            "path": f"/r/{CODE}",
            "query_string": b"",
            "headers": [(b"user-agent", BROWSER.removeprefix("User-Agent: ").encode())],
            "client": (f"10.{i % visitors // 65536}.{i % visitors // 256 % 256}.{i % visitors % 256}", 5000),
        }
        await redirect(scope, receive, send)
    await spool.flush()


async def drain(relay: ClickRelay) -> float:
    """Clicks per second until the spool is empty."""
    started, sent = time.perf_counter(), 0
    while n := await relay.drain_once():
        sent += n
    return sent / (time.perf_counter() - started)


async def bare(settings: SharingSettings, records: list[tuple[bytes, bytes, Headers]]) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True, linger_ms=0
    )
    await producer.start()
    try:
        await producer.partitions_for(CLICKS.name)  # the topic's metadata, before the clock starts
        started = time.perf_counter()
        futures = [
            await producer.send(CLICKS.name, value, key=key, headers=headers)
            for key, value, headers in records
        ]
        await asyncio.gather(*futures)
        return len(records) / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=8000)
    parser.add_argument("--visitors", type=int, default=2000, help="distinct visitors among the clicks")
    parser.add_argument("--batch", type=int, default=None, help="click_drain_batch (default: the setting's)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--telemetry", choices=("on", "off"), default="on")
    args = parser.parse_args()
    stack = StackConfig.from_env()
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    settings = SharingSettings(
        kafka_bootstrap=stack.kafka_bootstrap,
        mongo_url=stack.mongo_url,
        mongo_db_prefix=prefix,
        public_base_url="https://go.chorus.test",
        telemetry_enabled=args.telemetry == "on",
        otlp_endpoint=os.environ.get("CHORUS_OTLP_ENDPOINT", ""),
        log_level="WARNING",
    )
    batch = args.batch or settings.click_drain_batch
    setup_telemetry(settings)
    await ensure_topics(settings.kafka_bootstrap)
    seed_share(stack.mongo_url, settings.database_name(SERVICE), settings.public_base_url)
    mongo = create_client(settings, service=True)
    db = mongo[settings.database_name(SERVICE)]
    relays, bares = [], []
    try:
        for round_ in range(1, args.rounds + 1):
            spool = ClickSpool(str(Path(tempfile.mkdtemp(prefix="bench-drain-")) / "clicks.sqlite3"))
            await spool.open()
            redirect = RedirectApp(settings)
            redirect.attach(SharesStore(db).by_code, spool, None)  # type: ignore[arg-type]  # no caller is an advocate
            await fill(redirect, spool, args.clicks, args.visitors)
            seen = SeenVisitorsStore(db)
            relay = ClickRelay(settings, spool, seen=seen, flush_interval_s=0.01, batch=batch)
            # What the relay puts on the topic, for the baseline (sealed as the relay seals them).
            events = [click_event(record) for _, record in await spool.read(args.clicks)]
            vault = Vault(settings)
            sealed = await vault.seal(events)
            await vault.close()
            records = [
                (on_topic.record_key(), on_topic.to_json_bytes(), event_headers(event))
                for event, on_topic in zip(events, sealed, strict=True)
            ]
            bares.append(await bare(settings, records))
            relays.append(await drain(relay))
            await relay.stop()
            await db.drop_collection("seen_visitors")  # every round's visitors are new
            print(f"round {round_}: bare producer {bares[-1]:,.0f}, relay {relays[-1]:,.0f} clicks/s")
    finally:
        await mongo.drop_database(settings.database_name(SERVICE))
        await mongo.close()
    ratios = [r / b for r, b in zip(relays, bares, strict=True)]
    print(
        f"\nbatch {batch}, {args.clicks} clicks by {args.visitors} visitors, telemetry {args.telemetry}"
        f"\nmedians: bare producer {statistics.median(bares):,.0f} clicks/s,"
        f" relay {statistics.median(relays):,.0f} clicks/s"
        f"\nratio (relay / bare producer), median of rounds: {statistics.median(ratios):.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
