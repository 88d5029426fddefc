"""A scripted scenario of shares, clicks (human, bot, self, repeat), leads, sales, a job
application and its hire, with the funnel it must produce written out by hand, for the metrics
integration tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.metrics.handlers import ATTRIBUTION_GROUP, GROUP, WEBHOOKS_GROUP
from services.metrics.projections.domain import COUNTERS
from shared.events import Event, EventData, decode
from shared.events.clicks import ClickRecorded
from shared.events.conversions import (
    ApplicationSubmitted,
    HireMade,
    LeadCaptured,
    SaleRecorded,
    SaleRefunded,
)
from shared.events.shares import ShareMade
from shared.events.topics import CLICKS, CONVERSIONS, SHARES, TOPICS
from shared.messaging import EventProducer, skip_history
from shared.settings import ChorusSettings
from shared.vault import Vault

# A row's counters, in the order the expected tuples below give them.
FIELDS = COUNTERS


@dataclass
class Scenario:
    org: str
    today: date
    d1: date
    d2: date
    click_ids: dict[str, str] = field(default_factory=dict)
    share_ids: dict[str, str] = field(default_factory=dict)
    alice: str = ""
    bob: str = ""

    @property
    def first(self) -> date:
        return self.d1

    def expected(self, group_by: str) -> dict[str, dict[str, Any]]:
        """Rows by key: counters as a tuple in FIELDS order, and revenue."""
        Row = tuple[tuple[int, ...], dict[str, str]]
        by_day: dict[str, Row] = {
            self.d1.isoformat(): ((1, 1000, 2, 1, 1, 1, 0, 0, 0, 0, 0), {}),
            self.d2.isoformat(): ((2, 700, 3, 3, 0, 0, 0, 0, 0, 0, 0), {}),
            self.today.isoformat(): ((0, 0, 0, 0, 0, 0, 1, 2, 1, 1, 1), {"EUR": "100.00"}),
        }
        fixed: dict[str, dict[str, Row]] = {
            "advocate": {
                self.alice: ((2, 1200, 3, 2, 1, 1, 0, 1, 1, 0, 0), {"EUR": "90.00"}),
                self.bob: ((1, 500, 2, 2, 0, 0, 1, 0, 0, 1, 1), {}),
            },
            "content": {
                f"{self.org}-k1": ((2, 1500, 4, 3, 1, 1, 1, 0, 0, 1, 1), {}),
                f"{self.org}-k2": ((1, 200, 1, 1, 0, 0, 0, 1, 1, 0, 0), {"EUR": "90.00"}),
            },
            "team": {
                "sales": ((2, 1200, 3, 2, 1, 1, 0, 1, 1, 0, 0), {"EUR": "90.00"}),
                "eng": ((1, 500, 2, 2, 0, 0, 1, 0, 0, 1, 1), {}),
            },
            "network": {
                "linkedin": ((1, 1000, 2, 1, 1, 1, 0, 0, 0, 0, 0), {}),
                "x": ((2, 700, 3, 3, 0, 0, 1, 1, 1, 1, 1), {"EUR": "90.00"}),
            },
            "tag": {
                "ai": ((2, 1500, 4, 3, 1, 1, 1, 0, 0, 1, 1), {}),
                "cloud": ((1, 500, 2, 2, 0, 0, 1, 0, 0, 1, 1), {}),
            },
        }
        rows: dict[str, Row] = {}
        if group_by in fixed:
            rows = fixed[group_by]
        else:
            for day, (counters, revenue) in by_day.items():
                d = date.fromisoformat(day)
                key = {
                    "day": day,
                    "week": (d - timedelta(days=d.weekday())).isoformat(),
                    "month": d.strftime("%Y-%m"),
                }[group_by]
                empty: Row = ((0,) * len(FIELDS), {})
                before, before_revenue = rows.get(key, empty)
                summed = tuple(a + b for a, b in zip(before, counters, strict=True))
                rows[key] = (summed, {**before_revenue, **revenue})
        return {key: {**dict(zip(FIELDS, c, strict=True)), "revenue": r} for key, (c, r) in rows.items()}


def at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=UTC)


async def publish_activity(
    producer: EventProducer, org: str, topics: dict[str, str] | None = None
) -> Scenario:
    today = datetime.now(UTC).date()
    s = Scenario(org=org, today=today, d1=today - timedelta(days=3), d2=today - timedelta(days=1))
    s.alice, s.bob = f"{org}-alice", f"{org}-bob"
    k1, k2 = f"{org}-k1", f"{org}-k2"  # k1 is a job opening, k2 an article
    content_types = {k1: "job_opening", k2: "article"}
    shares = {
        "s1": (s.alice, k1, "linkedin", 1000, "sales", ["ai"], at(s.d1, 9)),
        "s2": (s.bob, k1, "x", 500, "eng", ["ai", "cloud"], at(s.d2, 9)),
        "s3": (s.alice, k2, "x", 200, "sales", [], at(s.d2, 10)),
    }
    events: list[Event[EventData]] = []
    for name, (advocate, content, network, audience, team, tags, when) in shares.items():
        share_id = s.share_ids[name] = f"{org}-{name}"
        events.append(
            Event.create(
                ShareMade(
                    share_id=share_id,
                    advocate_id=advocate,
                    content_id=content,
                    network=network,
                    code=name,
                    short_url=f"http://c/{name}",
                    target_url="http://example.com",
                    audience_size=audience,
                    team=team,
                    tags=tags,
                    shared_at=when,
                    content_type=content_types[content],
                ),
                tenant=org,
                source="/test",
            )
        )
    # (share, visitor, bot, self, unique, when)
    clicks = {
        "c1": ("s1", "v1", False, False, True, at(s.d1, 10)),
        "c2": ("s1", "v1", False, False, False, at(s.d1, 11)),  # a repeat
        "c3": ("s1", "v9", True, False, True, at(s.d1, 12)),  # a bot
        "c4": ("s1", "v8", False, True, True, at(s.d1, 13)),  # the advocate's own click
        "c5": ("s2", "v2", False, False, True, at(s.d2, 10)),
        "c6": ("s3", "v3", False, False, True, at(s.d2, 11)),
        "c7": ("s2", "v1", False, False, True, at(s.d2, 12)),  # the same visitor as c1, via bob
    }
    for name, (share, visitor, bot, self_click, unique, when) in clicks.items():
        advocate, content, network, _, team, tags, _ = shares[share]
        click_id = s.click_ids[name] = f"{org}-{name}-{uuid.uuid4().hex[:6]}"
        events.append(
            Event.create(
                ClickRecorded.model_validate(
                    {
                        "click_id": click_id,
                        "share_id": s.share_ids[share],
                        "advocate_id": advocate,
                        "content_id": content,
                        "network": network,
                        "clicked_at": when,
                        "visitor_hash": f"{org}-{visitor}",
                        "bot": bot,
                        "self": self_click,
                        "unique": unique,
                        "team": team,
                        "tags": tags,
                        "content_type": content_types[content],
                    }
                ),
                tenant=org,
                source="/test",
            )
        )
    if topics is None:
        await producer.publish_many(events)
    else:
        await send_to(producer, topics["shares_topic"], [e for e in events if isinstance(e.data, ShareMade)])
        await send_to(
            producer, topics["clicks_topic"], [e for e in events if isinstance(e.data, ClickRecorded)]
        )
    return s


async def post_conversions(client: httpx.AsyncClient, s: Scenario, api_key: str) -> list[dict[str, Any]]:
    """A lead via bob's click (c7, same visitor as alice's c1), a sale via alice's s3, an unattributed
    sale, the first lead's customer again (counted once), a job application via bob's click on the
    job opening (c5), that candidate's hire (credited through the application), and a refund of
    9.90 of alice's sale."""
    headers = {"X-API-Key": api_key}
    bodies = [
        {"type": "lead", "click_id": s.click_ids["c7"], "customer_id": "cust1"},
        {
            "type": "sale",
            "click_id": s.click_ids["c6"],
            "customer_id": "cust2",
            "amount": "99.90",
            "currency": "EUR",
            "order_id": "o-1",
        },
        {
            "type": "sale",
            "click_id": "no-such-click",
            "customer_id": "cust3",
            "amount": "10",
            "currency": "EUR",
            "order_id": "o-2",
        },
        {"type": "lead", "click_id": s.click_ids["c1"], "customer_id": "cust1"},
        {"type": "application", "click_id": s.click_ids["c5"], "customer_id": "cand1"},
        {"type": "hire", "customer_id": "cand1"},
        {"type": "refund", "customer_id": "cust2", "order_id": "o-1", "amount": "9.90", "currency": "EUR"},
    ]
    out = []
    for body in bodies:
        response = await client.post(
            "/v1/conversions", json=body, headers={**headers, "Idempotency-Key": uuid.uuid4().hex}
        )
        assert response.status_code == 200, response.text
        out.append(response.json())
    return out


def rows_by_key(funnel: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["key"]: {**{f: row[f] for f in FIELDS}, "revenue": row["revenue"]} for row in funnel["rows"]}


class TopicReader:
    """Reads what is produced on a topic after `open` (tests/helpers.tap needs metadata it may lack)."""

    def __init__(self, settings: ChorusSettings, topic: str) -> None:
        self._consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=settings.kafka_bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="latest",
        )
        self.records: list[Any] = []
        self._vault = Vault(settings)  # reveals people, as a service's consumer does

    async def __aenter__(self) -> TopicReader:
        await self._consumer.start()
        for tp in self._consumer.assignment():  # resolve "latest" now, before the test produces
            await self._consumer.position(tp)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()
        await self._vault.close()

    async def collect(
        self, predicate: Callable[[Event[EventData]], bool], count: int, timeout_s: float = 20.0
    ) -> list[tuple[Event[EventData], Any]]:
        matched: list[tuple[Event[EventData], Any]] = []
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(matched) < count and asyncio.get_running_loop().time() < deadline:
            fetched = await self._consumer.getmany(timeout_ms=200)
            for records in fetched.values():
                for record in records:
                    event = decode(record.value)
                    await self._vault.reveal([event])
                    if predicate(event):
                        matched.append((event, record))
        return matched


ALL_TOPICS = [t.name for t in TOPICS]


async def skip_metrics_history(settings: ChorusSettings) -> None:
    """Start each of the metrics service's consumer groups at the end of the topics. On a stack
    holding other runs' clicks (a long-lived one, CHORUS_TEST_STACK=external), the attribution
    group would otherwise index all of them first, and a conversion would not find its click."""
    for group in (GROUP, ATTRIBUTION_GROUP, WEBHOOKS_GROUP):
        await skip_history(settings.kafka_bootstrap, f"{settings.consumer_group_prefix}.{group}", ALL_TOPICS)


async def private_topics(bootstrap: str) -> dict[str, str]:
    """Fresh shares/clicks/conversions topics, so a replay from offset 0 reads only this test's events."""
    run = uuid.uuid4().hex[:8]
    names = {
        "shares_topic": f"test.{run}.shares",
        "clicks_topic": f"test.{run}.clicks",
        "conversions_topic": f"test.{run}.conversions",
    }
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(names["shares_topic"], SHARES.partitions, replication_factor=1),
                NewTopic(names["clicks_topic"], CLICKS.partitions, replication_factor=1),
                NewTopic(names["conversions_topic"], CONVERSIONS.partitions, replication_factor=1),
            ]
        )
    finally:
        await admin.close()
    return names


async def delete_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


async def send_to(producer: EventProducer, topic: str, events: list[Event[EventData]]) -> None:
    for event in events:
        await producer.send_raw(topic, event.to_json_bytes(), event.record_key(), [])


def conversion_events(s: Scenario) -> list[Event[EventData]]:
    """What post_conversions makes the API emit, and the lead once more as a relay would resend it."""
    # The projector reads only what each event counts for, so the ids here need not be the API's.
    now = datetime.now(UTC)
    lead = LeadCaptured(
        conversion_id="v1",
        key=s.share_ids["s2"],
        click_id=s.click_ids["c7"],
        customer_id="cust1",
        attributed=True,
        share_id=s.share_ids["s2"],
        advocate_id=s.bob,
        content_id=f"{s.org}-k1",
        converted_at=now,
        network="x",
        team="eng",
        tags=["ai", "cloud"],
    )
    via_alices_share = {
        "key": s.share_ids["s3"],
        "customer_id": "cust2",
        "attributed": True,
        "share_id": s.share_ids["s3"],
        "advocate_id": s.alice,
        "content_id": f"{s.org}-k2",
        "converted_at": now,
        "network": "x",
        "team": "sales",
    }
    sale = SaleRecorded(
        conversion_id="v2", click_id=s.click_ids["c6"], amount="99.90", currency="EUR", **via_alices_share
    )
    unattributed = SaleRecorded(
        conversion_id="v3",
        key="v3",
        customer_id="cust3",
        attributed=False,
        converted_at=now,
        amount="10",
        currency="EUR",
    )
    via_job_opening = {
        "key": s.share_ids["s2"],
        "customer_id": "cand1",
        "attributed": True,
        "share_id": s.share_ids["s2"],
        "advocate_id": s.bob,
        "content_id": f"{s.org}-k1",
        "converted_at": now,
        "network": "x",
        "team": "eng",
        "tags": ["ai", "cloud"],
    }
    application = ApplicationSubmitted(conversion_id="v4", click_id=s.click_ids["c5"], **via_job_opening)
    hire = HireMade(conversion_id="v5", application_id="v4", **via_job_opening)
    refund = SaleRefunded(
        conversion_id="v6", sale_id="v2", order_id="o-1", amount="9.90", currency="EUR", **via_alices_share
    )
    datas: tuple[EventData, ...] = (lead, sale, unattributed, application, hire, refund)
    events: list[Event[EventData]] = [
        Event.create(data, tenant=s.org, source="/test", event_id=f"{s.org}-v{n}")
        for n, data in enumerate(datas)
    ]
    return [*events, events[0]]
