"""Benchmark the public redirect against a bare Starlette 302, in the same run.

    python bench/redirect/run.py [--duration 10] [--connections 64] [--rounds 3]
                                 [--relay inline|process] [--telemetry on|off]

Needs a running stack (Kafka, SecantusDB), found from the CHORUS_* variables like the services do
(see devtools/local_stack.py), and `wrk` (apt-get install wrk). Both servers run under uvicorn with the
same settings (one worker, uvloop, httptools, no access log), pinned to CPU 0 when there are two or
more; wrk runs in another process pinned to CPU 1. Rounds alternate baseline and redirect, and
the medians are reported. The redirect's cache is warmed first and Kafka is real: every click
goes through the spool to `chorus.clicks`; after each round the script waits for the spool to
drain (so the relay never runs during a baseline round) and reports how long that took.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from pymongo import MongoClient

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.harness import Result, free_port, median_result, server, wrk  # noqa: E402
from devtools.local_stack import StackConfig  # noqa: E402

CODE = "BenchCode01"
BROWSER = "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0 Safari/537.36"


def seed_share(mongo_url: str, db_name: str, public_base_url: str) -> None:
    """The share the redirect serves, written as the service stores it (no API round trip)."""
    with MongoClient(mongo_url) as client:
        client[db_name]["shares"].insert_one(
            {
                "_id": "0193c0ffee00aabbccddeeff",
                "org": "org-bench",
                "advocate_id": "adv-bench",
                "content_id": "c-bench",
                "network": "linkedin",
                "message": "bench",
                "code": CODE,
                "short_url": f"{public_base_url}/r/{CODE}",
                "target_url": "https://www.example.com/blog/new-product?ref=site&utm_source=linkedin"
                "&utm_medium=employee_advocacy&utm_campaign=our-new-product"
                "&utm_content=0193c0ffee00aabbccddeeff#top",
                "status": "sent",
                "created_at": datetime.now(UTC),
                "event_id": "0193c0ffee00aabbccddeeff-made",
                "trace": {},
                "team": "sales",
                "tags": ["launch"],
            }
        )


def spool_rows(path: Path) -> int:
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("SELECT count(*) FROM clicks").fetchone()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each server")
    parser.add_argument(
        "--telemetry",
        choices=("on", "off"),
        default="on",
        help="on: spans are made (exported only if CHORUS_OTLP_ENDPOINT is set); off: no telemetry",
    )
    parser.add_argument(
        "--relay",
        choices=("inline", "process"),
        default="inline",
        help="drain the spool from a task in the server (default, as the service runs) or a relay process",
    )
    args = parser.parse_args()
    stack = StackConfig.from_env()
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    spool = Path(tempfile.mkdtemp(prefix="bench-redirect-")) / "clicks.sqlite3"
    public = "https://go.chorus.test"
    seed_share(stack.mongo_url, f"{prefix}_sharing", public)
    env = {
        "CHORUS_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "CHORUS_MONGO_URL": stack.mongo_url,
        "CHORUS_MONGO_DB_PREFIX": prefix,
        "CHORUS_CONSUMER_GROUP_PREFIX": prefix,
        "CHORUS_PUBLIC_BASE_URL": public,
        "CHORUS_CLICK_SPOOL_PATH": str(spool),
        "CHORUS_LOG_LEVEL": "WARNING",
        "CHORUS_CLICK_RELAY_PROCESS": "true" if args.relay == "process" else "false",
        "CHORUS_TELEMETRY_ENABLED": "true" if args.telemetry == "on" else "false",
        "CHORUS_OTLP_ENDPOINT": os.environ.get("CHORUS_OTLP_ENDPOINT", ""),
    }
    baseline_runs: list[Result] = []
    redirect_runs: list[Result] = []
    drains: list[tuple[int, float]] = []
    try:
        base_port, redirect_port = free_port(), free_port()
        path = f"/r/{CODE}"
        with (
            server("baseline:app", base_port, {}, probe_path=path, app_dir=Path(__file__).parent),
            server("services.sharing.main:create_app", redirect_port, env, probe_path=path, factory=True),
        ):
            base_url, redirect_url = (
                f"http://127.0.0.1:{base_port}{path}",
                f"http://127.0.0.1:{redirect_port}{path}",
            )
            wrk("warm-up", base_url, 2, args.connections, [BROWSER])
            wrk("warm-up", redirect_url, 2, args.connections, [BROWSER])  # also warms the code cache
            wait_drained(spool)
            # Alternate the two so that a neighbour's load on this machine hits both alike; the
            # redirect's spool is drained between rounds so its relay never runs during a
            # baseline round.
            load = (args.duration, args.connections, [BROWSER])
            for _ in range(args.rounds):
                baseline_runs.append(wrk("starlette baseline", base_url, *load))
                redirect_runs.append(wrk("sharing redirect", redirect_url, *load))
                drains.append(wait_drained(spool))
    finally:
        with MongoClient(stack.mongo_url) as client:
            client.drop_database(f"{prefix}_sharing")
        shutil.rmtree(spool.parent, ignore_errors=True)

    print(f"\n{'round':<6} {'server':<20} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>8}")
    for i, (b, r) in enumerate(zip(baseline_runs, redirect_runs, strict=True), 1):
        for run in (b, r):
            print(
                f"{i:<6} {run.name:<20} {run.requests_per_s:>10,.0f} {run.p50_ms:>8.2f} {run.p99_ms:>8.2f}"
                f" {run.errors:>8}"
            )
    base, redirect = median_result(baseline_runs), median_result(redirect_runs)
    print("\nmedians")
    for run in (base, redirect):
        print(f"       {run.name:<20} {run.requests_per_s:>10,.0f} {run.p50_ms:>8.2f} {run.p99_ms:>8.2f}")
    ratios = [r.requests_per_s / b.requests_per_s for b, r in zip(baseline_runs, redirect_runs, strict=True)]
    p99s = [r.p99_ms / b.p99_ms for b, r in zip(baseline_runs, redirect_runs, strict=True)]
    print(
        f"\nratio req/s (redirect / baseline), median of rounds: {statistics.median(ratios):.2f}"
        "  (target >= 0.6)"
    )
    print(f"p99 redirect / baseline, median of rounds:           {statistics.median(p99s):.2f}  (target < 2)")
    for i, (backlog, seconds) in enumerate(drains, 1):
        print(f"round {i}: spool backlog after the run {backlog} clicks, drained to Kafka in {seconds:.1f} s")
    return 0


def wait_drained(spool: Path, limit_s: float = 600) -> tuple[int, float]:
    """(rows waiting when called, seconds until the relay had sent them all to Kafka)."""
    started, backlog = time.monotonic(), spool_rows(spool)
    while spool_rows(spool) > 0 and time.monotonic() - started < limit_s:
        time.sleep(0.5)
    return backlog, time.monotonic() - started


if __name__ == "__main__":
    sys.exit(main())
