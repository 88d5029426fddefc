"""Test helpers shared by the integration and e2e tiers: running an app, reading topics, tokens."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any, Literal, NamedTuple

import httpx
import jsonschema
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from fastapi import FastAPI
from pymongo.asynchronous.database import AsyncDatabase
from starlette.types import ASGIApp

from services.metrics.projections.domain import Effect, Tally, Tallying
from shared.auth import issue_dev_token
from shared.events import Event, EventData, decode
from shared.events.topics import TOPICS
from shared.mongo import Document, IndexSpec, create_client, ensure_indexes
from shared.outbox import OUTBOX_SINCE
from shared.settings import ChorusSettings
from shared.vault import Vault
from tests.ports import free_port

# A desktop browser's user agent, for clicks that must count as a person's.
BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
)


def new_org() -> str:
    """A fresh organisation id: every test works in its own tenant, so runs never collide."""
    return f"org-{uuid.uuid4().hex[:10]}"


@functools.cache
def _released_components(service: str) -> dict[str, Any]:
    path = Path(__file__).resolve().parent.parent / "docs" / "openapi" / f"{service}.json"
    components: dict[str, Any] = json.loads(path.read_text())["components"]
    return components


def openapi_errors(service: str, schema: str, body: Any) -> list[str]:
    """What in `body` breaks `schema` of the service's released OpenAPI document (docs/openapi),
    as a client generated from that document checks it; [] when it matches. Stricter than a
    pydantic model_validate of the response model, which fills a missing field's default."""
    root = {"$ref": f"#/components/schemas/{schema}", "components": _released_components(service)}
    validator = jsonschema.Draft202012Validator(root)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]


def tampered(secret: str) -> str:
    """The secret with its last character changed: always a different string, so a test of a
    forgery can never be handed the genuine value by chance."""
    return secret[:-1] + ("0" if secret[-1] != "0" else "1")


@contextlib.asynccontextmanager
async def one_database_through_clients(
    settings: ChorusSettings, database: str, indexes: list[IndexSpec], clients: int
) -> AsyncIterator[list[AsyncDatabase[Document]]]:
    """`database` with its indexes, through `clients` separate clients (each with its own
    connection pool), as that many replicas of a service see it; dropped at the end."""
    opened = [create_client(settings) for _ in range(clients)]
    await ensure_indexes(opened[0][database], indexes)
    try:
        yield [client[database] for client in opened]
    finally:
        await opened[0].drop_database(database)
        for client in opened:
            await client.close()


@contextlib.asynccontextmanager
async def scratch_database(
    settings: ChorusSettings, name: str, indexes: list[IndexSpec] | None = None
) -> AsyncIterator[AsyncDatabase[Document]]:
    """A database of the test's own (`name` and a random suffix), with `indexes`; dropped at the end."""
    database = settings.database_name(f"{name}_{uuid.uuid4().hex[:8]}")
    async with one_database_through_clients(settings, database, indexes or [], 1) as [db]:
        yield db


@contextlib.asynccontextmanager
async def http_server(app: ASGIApp, *, lifespan: Literal["auto", "on", "off"] = "auto") -> AsyncIterator[str]:
    """`app` served by uvicorn on a free local port (a receiver, an identity provider); its URL.
    `lifespan="off"` serves an app whose lifespan already runs (in `running_app`)."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, timeout_s=10, interval_s=0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def bearer(settings: ChorusSettings, *, org: str, sub: str, roles: list[str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_dev_token(settings, org=org, sub=sub, roles=roles)}"}


@contextlib.asynccontextmanager
async def running_app(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan (real Kafka, real SecantusDB) and talk to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


class TopicTap:
    """Reads a topic from the offsets it had when the tap opened (no consumer group)."""

    def __init__(self, settings: ChorusSettings, topic: str) -> None:
        self.topic = topic
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
        )
        # Events are read as a service's consumer reads them: people revealed (shared/vault.py).
        self._vault = Vault(settings)
        self.seen: list[Event[EventData]] = []
        self.raw: list[Any] = []

    async def open(self) -> TopicTap:
        await self._consumer.start()
        # A consumer without a subscription knows no topic's partitions until asked for them
        # (aiokafka has no public call for this one).
        await self._consumer._client.set_topics([self.topic])
        partitions = self._consumer.partitions_for_topic(self.topic)
        if partitions is None:
            await self._consumer.stop()
            raise AssertionError(f"topic {self.topic} does not exist")
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the positions now, before the test produces anything
            await self._consumer.position(tp)
        return self

    async def close(self) -> None:
        await self._consumer.stop()
        await self._vault.close()

    async def collect(
        self,
        predicate: Callable[[Event[EventData]], bool],
        *,
        count: int,
        timeout_s: float = 20.0,
        settle_s: float = 0.0,
    ) -> list[Event[EventData]]:
        """Wait for `count` matching events; with `settle_s`, keep reading that long for extras."""
        deadline = time.monotonic() + timeout_s
        matched: list[Event[EventData]] = []
        settle_until: float | None = None
        while True:
            now = time.monotonic()
            if len(matched) >= count and settle_until is None:
                settle_until = now + settle_s
            if settle_until is not None and now >= settle_until:
                return matched
            if now > deadline:
                return matched
            batch = await self._consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    self.raw.append(record)
                    event = decode(record.value)
                    await self._vault.reveal([event])
                    self.seen.append(event)
                    if predicate(event):
                        matched.append(event)


@contextlib.asynccontextmanager
async def tap(settings: ChorusSettings, topic: str) -> AsyncIterator[TopicTap]:
    t = await TopicTap(settings, topic).open()
    try:
        yield t
    finally:
        await t.close()


async def eventually(check: Callable[[], Any], *, timeout_s: float = 30.0, interval_s: float = 0.2) -> Any:
    """Poll an async or sync check until it returns a truthy value; fail with its last result."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s}s; last result: {last!r}")


async def group_assignments(bootstrap: str, group: str) -> list[set[TopicPartition]]:
    """The partitions each member of a stable consumer group holds ([] while it rebalances)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    [described] = response.groups
    state, members = described[2], described[5]
    if state != "Stable":
        return []
    # The assignment is each member's last field, whatever the response's version.
    return [set(ConsumerProtocolMemberAssignment.decode(member[-1]).partitions()) for member in members]


async def group_caught_up(bootstrap: str, group: str, topics: Iterable[str]) -> bool:
    """The consumer group has committed everything the topics hold (an empty partition needs no
    commit)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        partitions = {t.name: t.partitions for t in TOPICS}
        tps = [TopicPartition(t, p) for t in topics for p in range(partitions[t])]
        end = await consumer.end_offsets(tps)
        return all(end[tp] == 0 or (tp in committed and committed[tp].offset >= end[tp]) for tp in tps)
    finally:
        await consumer.stop()
        await admin.close()


async def outbox_sent(db: AsyncDatabase[Document], collections: Iterable[str], org: str) -> None:
    """Wait until the outbox relay has sent every event `org`'s writes queued in `collections`
    (a tap opened after that sees only what comes later)."""

    async def none_pending() -> bool:
        for collection in collections:
            if await db[collection].find_one({"org": org, OUTBOX_SINCE: {"$exists": True}}, {"_id": 1}):
                return False
        return True

    await eventually(none_pending)


class Pending(NamedTuple):
    """A metrics effect already built, with the record it came from (source, offset, event id)."""

    effect: Effect
    source: str
    offset: int
    event_id: str


def tally_of(pending: Iterable[Pending]) -> Tally:
    """The tally of effects already built (each source's in offset order), as the projector's
    worker builds one from events."""
    tallying = Tallying()
    for p in pending:
        tallying.add(tallying.slot(p.effect), p.source, p.offset, p.event_id)
    return tallying.tally
