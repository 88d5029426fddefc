"""Benchmark `GET /v1/leaderboard` over a large organisation against a bare JSON endpoint.

    python bench/leaderboard/run.py [--advocates 100000] [--ledger 10000000] [--db NAME]
                                    [--duration 8] [--connections 16] [--rounds 3]

Needs a running stack (Kafka, a MongoDB server), found from the CHORUS_* variables like the
services do (see devtools/local_stack.py), and `wrk` (apt-get install wrk). Both servers run under
uvicorn with the same settings (one worker, uvloop, httptools, no access log), pinned to CPU 0
when there are two or more; the load runs in another process pinned to CPU 1.

Seeding writes one organisation's week board (one `boards` document per advocate, exactly as
BoardStore.add shapes it) and its ledger entries, shaped like the service's, under
the service's indexes, before the service starts. With `--db NAME` the database is kept: a later
run with the same name and sizes measures without seeding, and an interrupted seeding goes on
where it stopped (10,000,000 ledger entries: see README.md for how long). Without it a fresh
database is seeded and dropped at the end. The service's consumer group starts at the end of the
topics, so it does not work through the stack's history while it is measured.

Rounds alternate the baseline and each leaderboard query under wrk. The first leaderboard request
builds the board's standings (see services/recognition/leaderboards/standings.py); its time is reported apart.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient, MongoClient
from pymongo.errors import BulkWriteError

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.harness import PROBE, Result, free_port, median_result, server, wrk  # noqa: E402
from devtools.local_stack import StackConfig  # noqa: E402
from services.recognition.handlers import GROUP  # noqa: E402
from services.recognition.leaderboards.domain import Period, period_key  # noqa: E402
from services.recognition.main import INDEXES  # noqa: E402
from services.recognition.settings import RecognitionSettings  # noqa: E402
from shared.auth import issue_dev_token  # noqa: E402
from shared.events.topics import TOPICS  # noqa: E402
from shared.messaging import skip_history  # noqa: E402
from shared.mongo import ensure_indexes  # noqa: E402

ORG = "org-bench"
DUPLICATE_KEY = 11000
LEDGER_BATCH = 10_000
SERVICE = "services.recognition.main:create_app"


def timed_get(url: str, token: str, timeout_s: float) -> float:
    """Seconds one GET took; raises on a non-2xx answer or a timeout."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310 (http://127.0.0.1 only)
    started = time.perf_counter()
    with PROBE.open(request, timeout=timeout_s) as response:
        response.read()
    return time.perf_counter() - started


def seed_boards(db: Any, key: str, advocates: int, batch: int = 10_000) -> float:
    """The week's board: one document per advocate as add_to_board writes it. 1 in 100 opted out."""
    rng = random.Random(6)
    started = time.perf_counter()
    for first in range(0, advocates, batch):
        docs = []
        for i in range(first, min(first + batch, advocates)):
            advocate = f"adv{i:06d}"
            docs.append(
                {
                    "_id": board_id(key, i),
                    "org": ORG,
                    "period": key,
                    "advocate_id": advocate,
                    "visible": i % 100 != 99,
                    "team": f"team{i % 50:02d}",
                    "points": rng.randint(0, 10_000),
                    "applied_events": [f"led_{i:06d}_{j}" for j in range(3)],
                }
            )
        db["boards"].insert_many(docs, ordered=False)
    return time.perf_counter() - started


def seed_ledger(
    db: Any, key: str, advocates: int, count: int, start: int = 0, batch: int = LEDGER_BATCH
) -> float:
    """Ledger entries `start` to `count` shaped like the service's, spread over the advocates
    (ids are numbered, so an interrupted seeding goes on where it stopped); seconds taken."""
    at = datetime.now(UTC)
    started = time.perf_counter()
    for first in range(start - start % batch, count, batch):
        docs = []
        for i in range(first, min(first + batch, count)):
            docs.append(
                {
                    "_id": ledger_id(i),
                    "org": ORG,
                    "advocate_id": f"adv{i % advocates:06d}",
                    "kind": "share_made",
                    "points": 5,
                    "balance_delta": 5,
                    "lifetime_delta": 5,
                    "uncapped_points": 5,
                    "base_points": 5,
                    "multiplier": 1.0,
                    "campaign_ids": [],
                    "rules_version": 0,
                    "reason": "share made",
                    "source_event_id": f"evt_{i:010d}",
                    "source_event_type": "chorus.share.made",
                    "ref": f"shr_{i:010d}",
                    "content_id": None,
                    "course_id": None,
                    "team": f"team{i % 50:02d}",
                    "occurred_at": at,
                    "periods": [key, "all"],
                    "counter": "shares",
                    "counter_delta": 1,
                    "created_at": at,
                    "projected": True,
                    "published": True,
                }
            )
        try:
            db["ledger"].insert_many(docs, ordered=False)
        except BulkWriteError as exc:  # the entries of a batch cut short: only they may repeat
            if any(e["code"] != DUPLICATE_KEY for e in exc.details["writeErrors"]):
                raise
        done = first + len(docs)
        if done % 500_000 == 0:
            elapsed = time.perf_counter() - started
            print(f"  ledger: {done:,}/{count:,} in {elapsed:.0f} s", flush=True)
    return time.perf_counter() - started


async def create_service_indexes(mongo_url: str, db_name: str) -> None:
    """The service's own indexes, as it creates them at start (shared.mongo.ensure_indexes)."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url)
    try:
        await ensure_indexes(client[db_name], INDEXES)
    finally:
        await client.close()


def seed(db: Any, key: str, advocates: int, entries: int) -> list[str]:
    """The board and the ledger, unless already there; what was done, to print. The service is
    not running meanwhile, so the seeding's writes are measured alone; its indexes are created
    first (create_service_indexes), so the entries go in as the service would find them."""
    done: list[str] = []
    if count(db, "boards", {"org": ORG, "period": key}) != advocates:
        db["boards"].delete_many({})
        took = seed_boards(db, key, advocates)
        each_ms = took / advocates * 1000
        done.append(f"boards: {advocates:,} documents ({key}) in {took:.1f} s ({each_ms:.3f} ms each)")
    if db["ledger"].find_one({"_id": ledger_id(entries)}) is not None:  # seeded for a bigger run
        db["ledger"].delete_many({})
    have = ledger_seeded(db, entries)
    if have < entries:
        took = seed_ledger(db, key, advocates, entries, start=have)
        done.append(
            f"ledger: {entries - have:,} entries (from {have:,}) in {took / 60:.1f} min"
            f" ({took / max(entries - have, 1) * 1000:.3f} ms each)"
        )
    if not done:
        done.append(
            f"database {db.name}: seeded before ({advocates:,} board entries, {entries:,} ledger entries)"
        )
    return done


def board_id(key: str, i: int) -> str:
    return f"{ORG}|{key}|adv{i:06d}"


def ledger_id(i: int) -> str:
    return f"led_{i:010d}"


def count(db: Any, collection: str, query: dict[str, Any]) -> int:
    """Documents matching `query`, counted on an index (the count command's COUNT_SCAN: keys
    only). PyMongo's count_documents is an aggregation, which SecantusDB answers by fetching
    every matching document (5x slower, measured)."""
    return int(db.command("count", collection, query=query)["n"])


def ledger_seeded(db: Any, entries: int, batch: int = LEDGER_BATCH) -> int:
    """How many ledger entries are in, to a batch. Not counted: a count reads every key of an
    index, 10,000,000 of them in ~60 s on SecantusDB 0.5.3 (its estimated count took 13 s).
    Entries go in by numbered batches, in order, so ~20 lookups by _id find the first batch
    whose first entry is missing, where seeding stopped."""
    if db["ledger"].find_one({"_id": ledger_id(entries - 1)}) is not None:
        return entries
    low, high = 0, -(-entries // batch)  # batches [0, low) are in; [high, ...) are not
    while low < high:
        middle = (low + high) // 2
        if db["ledger"].find_one({"_id": ledger_id(middle * batch)}) is not None:
            low = middle + 1
        else:
            high = middle
    return max(0, (low - 1) * batch)  # the last batch found may have been cut short: redo it


def time_standings_read(db: Any, key: str) -> str:
    """What a standings build reads (BoardStore.entries), timed on the database alone."""
    started = time.perf_counter()
    fields = {"_id": 0, "advocate_id": 1, "points": 1, "team": 1, "visible": 1}
    count = len(db["boards"].find({"org": ORG, "period": key}, fields).to_list())
    return f"  board_entries find(org, period): {count:,} entries in {time.perf_counter() - started:.2f} s"


def main() -> int:
    # A SIGTERM (a long seeding stopped with `kill`) unwinds like Ctrl-C, so the servers stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--advocates", type=int, default=100_000)
    parser.add_argument("--ledger", type=int, default=10_000_000, help="ledger entries to seed")
    parser.add_argument("--db", help="keep the seeded database under this name, and reuse it if seeded")
    parser.add_argument("--seed-only", action="store_true", help="seed, keep (needs --db) and stop")
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each server")
    parser.add_argument("--request-timeout", type=float, default=600.0)
    parser.add_argument(
        "--no-telemetry", action="store_true", help="run the service without traces and metrics"
    )
    parser.add_argument(
        "--trace-ratio", type=float, help="the share of traces sampled (CHORUS_TRACE_SAMPLE_RATIO); default 1"
    )
    args = parser.parse_args()
    if args.seed_only and not args.db:
        parser.error("--seed-only needs --db")
    stack = StackConfig.from_env()
    prefix = args.db or f"bench{uuid.uuid4().hex[:6]}"
    db_name = f"{prefix}_recognition"
    group_prefix = f"bench{uuid.uuid4().hex[:6]}"
    settings = RecognitionSettings()
    viewer = "adv050000" if args.advocates > 50_000 else f"adv{args.advocates // 2:06d}"
    token = issue_dev_token(settings, org=ORG, sub=viewer, roles=["advocate"])
    auth = [f"Authorization: Bearer {token}"]
    key = period_key(Period.WEEK, datetime.now(UTC))
    env = {
        "CHORUS_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "CHORUS_MONGO_URL": stack.mongo_url,
        "CHORUS_MONGO_DB_PREFIX": prefix,
        # A group of its own each run, started at the end of the topics (below).
        "CHORUS_CONSUMER_GROUP_PREFIX": group_prefix,
        "CHORUS_LOG_LEVEL": "WARNING",
        "CHORUS_OTLP_ENDPOINT": os.environ.get("CHORUS_OTLP_ENDPOINT", ""),
        "CHORUS_TELEMETRY_ENABLED": "false" if args.no_telemetry else "true",
    }
    if args.trace_ratio is not None:
        env["CHORUS_TRACE_SAMPLE_RATIO"] = str(args.trace_ratio)
    rows: list[tuple[int, Result]] = []
    seeding: list[str] = []
    client: MongoClient[Any] = MongoClient(stack.mongo_url)
    try:
        db = client[db_name]
        asyncio.run(create_service_indexes(stack.mongo_url, db_name))
        seeding.extend(seed(db, key, args.advocates, args.ledger))
        if args.seed_only:
            print("\n".join(seeding))
            return 0
        # The service's consumers start at the end of the topics, not in the stack's history.
        asyncio.run(skip_history(stack.kafka_bootstrap, f"{group_prefix}.{GROUP}", [t.name for t in TOPICS]))
        base_port, board_port = free_port(), free_port()
        with (
            server("baseline:app", base_port, {}, probe_path="/healthz", app_dir=Path(__file__).parent),
            server(SERVICE, board_port, env, probe_path="/healthz", factory=True),
        ):
            seeding.append(time_standings_read(db, key))

            base_url = f"http://127.0.0.1:{base_port}/v1/leaderboard"
            board = f"http://127.0.0.1:{board_port}/v1/leaderboard"
            queries = {
                "leaderboard (org, week)": f"{board}?period=week&scope=org&limit=50",
                "leaderboard around-me": f"{board}/around-me?period=week&size=3",
            }
            wrk("warm-up", base_url, 2, args.connections, auth)
            first = timed_get(queries["leaderboard (org, week)"], token, args.request_timeout)
            seeding.append(f"first leaderboard request (builds the standings): {first:.2f} s")
            for round_no in range(1, args.rounds + 1):
                rows.append(
                    (round_no, wrk("starlette baseline", base_url, args.duration, args.connections, auth))
                )
                for name, url in queries.items():
                    rows.append((round_no, wrk(name, url, args.duration, args.connections, auth)))
    finally:
        if not args.db:
            client.drop_database(db_name)
        client.close()

    print(
        f"\n{args.advocates:,} advocates, {args.ledger:,} ledger entries;"
        f" telemetry {'off' if args.no_telemetry else 'on'}"
        f" (traces sampled: {1.0 if args.trace_ratio is None else args.trace_ratio:g});"
        f" load average {os.getloadavg()[0]:.2f}"
    )
    for line in seeding:
        print(line)
    print(
        f"\n{'round':<6} {'server':<26} {'how':<8} {'req/s':>10} {'p50 ms':>10} {'p99 ms':>10} {'errors':>7}"
    )
    for round_no, run in rows:
        print(
            f"{round_no:<6} {run.name:<26} {run.how:<8} {run.requests_per_s:>10,.2f} {run.p50_ms:>10.2f}"
            f" {run.p99_ms:>10.2f} {run.errors:>7}"
        )
    print("\nmedians, and ratio req/s (endpoint / baseline, target >= 0.3), p99 / baseline")
    names = list(dict.fromkeys(run.name for _, run in rows))
    medians = {n: median_result([r for _, r in rows if r.name == n]) for n in names}
    base = medians["starlette baseline"]
    for name, run in medians.items():
        print(
            f"       {name:<26} {run.requests_per_s:>10,.2f} {run.p50_ms:>10.2f} {run.p99_ms:>10.2f}"
            f"   ratio {run.requests_per_s / base.requests_per_s:.3f}   p99 x{run.p99_ms / base.p99_ms:,.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
