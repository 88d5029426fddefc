"""What the services put on /metrics, driven through their own code, as Prometheus text.

Run as `python -m tests.deploy.exposition` (tests/deploy/test_monitoring.py does): a process of
its own, because OpenTelemetry's meter provider is set once per process. Telemetry is set up by
shared.telemetry as in production, then each instrument the alerts and the dashboard read is
made to record through the code path that records it in a running service:

- HTTP server metrics: requests to the content service's real app (FastAPI's instrumentation,
  configured by shared.app);
- the redirect's counter (each outcome) and the click spool's backlog: the sharing service's
  redirect and relay;
- the consumer metrics: a ConsumerRunner handling one record and recording its lag. Without a
  broker this calls two of its private steps; a rename there fails this script, which is the
  moment to check that the dashboard still reads what the runner records.

No MongoDB, Kafka or network is needed.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import httpx
from aiokafka import ConsumerRecord, TopicPartition
from prometheus_client import generate_latest
from pymongo.errors import ConnectionFailure

from services.content.main import create_app as create_content_app
from services.sharing.redirect.app import RedirectApp
from services.sharing.redirect.spool import ClickRelay, ClickSpool
from services.sharing.settings import SharingSettings
from services.sharing.shares.domain import Share
from shared.auth import TokenVerifier
from shared.messaging import EventProducer, Subscription
from shared.messaging.consumer import ConsumerRunner
from shared.settings import ChorusSettings
from shared.telemetry import setup_telemetry
from tests.unit.sharing.test_redirect_and_spool import SHARE as REDIRECT_TEST_SHARE

# The unit tests' share, with a plain target (the exposition checks the redirect, not its URL).
SHARE = replace(REDIRECT_TEST_SHARE, target_url="https://example.com/p", team=None, tags=())


async def _http() -> None:
    app = create_content_app()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://content") as client:
        await client.get("/v1/content")  # no token: a 401, measured by route and status


async def _redirect_and_spool(settings: SharingSettings, directory: Path) -> None:
    spool = ClickSpool(str(directory / "spool.sqlite3"))
    relay = ClickRelay(settings, spool, flush_interval_s=60, batch=10)
    await relay.start(flush=False, drain=False)
    redirect = RedirectApp(settings)

    async def load(code: str) -> Share | None:
        if code == "Down1234567":
            raise ConnectionFailure("MongoDB is not answering")  # as pymongo does in an outage
        return SHARE if code == "Code1234567" else None

    redirect.attach(load, spool, TokenVerifier(settings))
    transport = httpx.ASGITransport(app=redirect, client=("192.0.2.1", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://link") as client:
        await client.get("/r/Code1234567")  # redirected
        await client.get("/r/Nope1234567")  # not_found
        await client.get("/r/Down1234567")  # unavailable
    await spool.flush()
    await relay.measure_backlog()
    # Stopping the relay would withdraw its backlog from the gauge: keep it for the scrape.


class _Highwater:
    def highwater(self, tp: TopicPartition) -> int:
        return 10


async def _consumer(settings: ChorusSettings) -> None:
    runner = ConsumerRunner(settings, Subscription(group="exposition"), EventProducer(settings))
    record: ConsumerRecord[bytes, bytes] = ConsumerRecord(
        "chorus.clicks", 0, 4, 0, 0, None, b"{}", None, 0, 2, []
    )

    async def handled() -> None:
        return None

    await runner._with_retries([record], lambda i: {}, handled)
    runner._consumer = _Highwater()  # type: ignore[assignment]
    runner._record_lag(TopicPartition("chorus.clicks", 0), 4)


async def _exercise() -> None:
    settings = SharingSettings(telemetry_enabled=True, otlp_endpoint=None)
    with tempfile.TemporaryDirectory(prefix="chorus-exposition-") as directory:
        await _http()
        await _redirect_and_spool(settings, Path(directory))
        await _consumer(settings)


def main() -> None:
    setup_telemetry(ChorusSettings(telemetry_enabled=True, otlp_endpoint=None, log_level="WARNING"))
    asyncio.run(_exercise())
    sys.stdout.write(generate_latest().decode())


if __name__ == "__main__":
    main()
