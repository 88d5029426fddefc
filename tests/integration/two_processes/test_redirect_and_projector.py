"""The production path: the public redirect (sharing) and the metrics projector each run as two
processes against one store, as replicas do, and the figures come out exact.

Visitors reach the two redirect processes the way the ingress sends them (by client address,
deploy/k8s/base/ingress.yaml); a burst of click and conversion events goes straight to the
topics; one metrics process is killed mid-burst (kill -9: its uncommitted polls are redelivered
to the other) and started again; conversions are posted to both metrics processes at once, some
for the same customer. Clicks, unique clicks, bot and self clicks, shares, reach, leads, sales
and revenue, in total and per advocate, content, team and tag, must equal what was sent: no lost
update, no double count.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from devtools import local_stack
from devtools.cli import serve_argv
from shared.events import Event, EventData
from shared.events.clicks import CLICK_ID_PARAM, ClickRecorded
from shared.events.content import Audience, ContentPublished
from shared.events.conversions import LeadCaptured
from shared.events.topics import CLICKS, CONVERSIONS, SHARES, TOPICS
from shared.messaging import EventProducer, skip_history
from shared.mongo import create_client
from shared.settings import ChorusSettings
from tests.helpers import BROWSER_UA, bearer, eventually, group_caught_up, new_org
from tests.ports import free_port_block

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

# Ports of the processes this test starts (sharing 0 and 1, metrics 2 and 3), from a base that
# another run on the same machine can move away from.
# Four consecutive free ports (redirects, then projectors), unless CHORUS_TEST_PROCESS_PORT_BASE names them.
PORT_BASE = int(os.environ.get("CHORUS_TEST_PROCESS_PORT_BASE") or free_port_block(4))
BOT_UA = "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)"
COUNTERS = ("shares", "reach", "clicks", "unique_clicks", "bot_clicks", "self_clicks", "leads", "sales")
GROUP_BYS = ("advocate", "content", "team", "tag")
WAIT_S = 240


class ServiceProcess:
    """One service as a real process (`chorus serve`), as the e2e tests and the image run it."""

    def __init__(self, service: str, port: int, env: dict[str, str], logs: Path) -> None:
        self.service, self.port, self.env = service, port, env
        self.log = logs / f"{service}-{port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        # Otherwise readiness could be answered by whatever already listens there.
        with socket.socket() as probe:
            in_use = probe.connect_ex(("127.0.0.1", self.port)) == 0
        assert not in_use, f"port {self.port} is in use: move CHORUS_TEST_PROCESS_PORT_BASE"
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                serve_argv(self.service, port=self.port), env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    async def ready(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                assert self.process is not None and self.process.poll() is None, self.tail()
                try:
                    if (await client.get(f"{self.url}/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"{self.service}:{self.port} not ready\n{self.tail()}"
                await asyncio.sleep(0.3)

    def kill(self) -> None:
        """kill -9: no shutdown, nothing committed or flushed."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def tail(self) -> str:
        return f"--- {self.log.name}:\n{self.log.read_text(errors='replace')[-3000:]}"


@dataclass
class Processes:
    sharing: list[ServiceProcess]
    metrics: list[ServiceProcess]
    settings: ChorusSettings  # what the processes run with (database and group prefixes)

    def tails(self) -> str:
        return "\n".join(p.tail() for p in [*self.sharing, *self.metrics])


@pytest.fixture
def processes(
    stack: local_stack.StackConfig, settings: ChorusSettings, tmp_path: Path
) -> Iterator[Processes]:
    prefix = f"{settings.mongo_db_prefix}x{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        **stack.env(),
        "CHORUS_MONGO_DB_PREFIX": prefix,
        # The session's vault: what the test's own producers seal, these processes reveal.
        "CHORUS_VAULT_DATABASE": settings.vault_database_name(),
        "CHORUS_CONSUMER_GROUP_PREFIX": prefix,
        "CHORUS_PUBLIC_BASE_URL": f"http://127.0.0.1:{PORT_BASE}",
        # The ingress passes the visitor's address on; the redirect hashes visitors by it.
        "CHORUS_CLIENT_IP_HEADER": "x-forwarded-for",
    }
    sharing = [
        ServiceProcess(
            "sharing",
            PORT_BASE + i,
            {**env, "CHORUS_CLICK_SPOOL_PATH": str(tmp_path / f"spool-{i}.sqlite3")},
            tmp_path,
        )
        for i in range(2)
    ]
    metrics = [ServiceProcess("metrics", PORT_BASE + 2 + i, env, tmp_path) for i in range(2)]
    yield Processes(
        sharing,
        metrics,
        settings.model_copy(update={"mongo_db_prefix": prefix, "consumer_group_prefix": prefix}),
    )
    for process in [*sharing, *metrics]:
        process.stop()


@dataclass
class Expected:
    """What was sent, counted by hand: per (dimension, key), the funnel's counters and revenue."""

    rows: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    revenue: dict[tuple[str, str], Decimal] = field(default_factory=dict)

    def add(self, dims: list[tuple[str, str]], counter: str, n: int = 1) -> None:
        for dim in [("all", "*"), *dims]:
            self.rows.setdefault(dim, Counter())[counter] += n

    def add_revenue(self, dims: list[tuple[str, str]], amount: Decimal) -> None:
        for dim in [("all", "*"), *dims]:
            self.revenue[dim] = self.revenue.get(dim, Decimal(0)) + amount

    def row(self, dim: str, key: str) -> dict[str, Any]:
        counters = self.rows.get((dim, key), Counter())
        revenue = self.revenue.get((dim, key))
        return {
            **{name: counters[name] for name in COUNTERS},
            "revenue": {"EUR": revenue} if revenue else {},
        }

    def keys(self, dim: str) -> set[str]:
        return {key for d, key in self.rows if d == dim}


@dataclass(frozen=True)
class Share:
    share_id: str
    code: str
    advocate: str
    content: str
    team: str
    tags: tuple[str, ...]

    def dims(self) -> list[tuple[str, str]]:
        return [
            ("advocate", self.advocate),
            ("content", self.content),
            ("team", self.team),
            *(("tag", t) for t in self.tags),
        ]


def measured(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **{name: row[name] for name in COUNTERS},
        "revenue": {currency: Decimal(amount) for currency, amount in row["revenue"].items()},
    }


async def funnel(client: httpx.AsyncClient, url: str, headers: dict[str, str], group_by: str) -> Any:
    today = datetime.now(UTC).date()
    response = await client.get(
        f"{url}/v1/funnel",
        params={
            "from": (today - timedelta(days=1)).isoformat(),
            "to": today.isoformat(),
            "group_by": group_by,
        },
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return response.json()


async def figures(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> dict[str, Any]:
    """Totals and the rows of every breakdown, as one metrics process answers them."""
    out: dict[str, Any] = {"total": measured((await funnel(client, url, headers, "day"))["totals"])}
    for group_by in GROUP_BYS:
        rows = (await funnel(client, url, headers, group_by))["rows"]
        out[group_by] = {row["key"]: measured(row) for row in rows}
    return out


def expected_figures(expected: Expected) -> dict[str, Any]:
    out: dict[str, Any] = {"total": expected.row("all", "*")}
    for group_by in GROUP_BYS:
        out[group_by] = {key: expected.row(group_by, key) for key in expected.keys(group_by)}
    return out


@dataclass
class Run:
    """One organisation's traffic through the four processes, and what it must add up to."""

    processes: Processes
    settings: ChorusSettings
    producer: EventProducer
    http: httpx.AsyncClient  # API calls
    visitors: httpx.AsyncClient  # the open web: none of the advocates' cookies the API sets
    org: str = field(default_factory=new_org)
    rng: random.Random = field(default_factory=lambda: random.Random(14))
    expected: Expected = field(default_factory=Expected)
    shares: list[Share] = field(default_factory=list)
    human_clicks: list[tuple[Share, str]] = field(default_factory=list)  # (share, click id)

    @property
    def redirects(self) -> list[str]:
        return [p.url for p in self.processes.sharing]

    @property
    def projectors(self) -> list[str]:
        return [p.url for p in self.processes.metrics]

    def as_advocate(self, advocate: str) -> dict[str, str]:
        return bearer(self.settings, org=self.org, sub=advocate, roles=["advocate"])

    @property
    def admin(self) -> dict[str, str]:
        return bearer(self.settings, org=self.org, sub="admin-1", roles=["admin"])

    async def make_shares(self) -> None:
        """Two contents, three advocates enrolled and sharing each content, through both
        sharing processes."""
        org = self.org
        contents = {f"{org}-k0": ("launch",), f"{org}-k1": ("ai", "cloud")}
        for content_id, tags in contents.items():
            published = ContentPublished(
                content_id=content_id,
                content_type="article",
                title=f"Article {content_id}",
                url=f"https://www.example.com/{content_id}",
                tags=list(tags),
                audience=Audience(),
                published_by="editor-1",
            )
            await self.producer.publish(Event.create(published, tenant=org, source="/tests"))
        advocates = {f"{org}-a{i}": (team, 100 * (i + 1)) for i, team in enumerate(["sales", "eng", "sales"])}
        for i, (advocate, (team, audience)) in enumerate(advocates.items()):
            profile = {
                "display_name": advocate,
                "team": team,
                "networks": [{"network": "linkedin", "handle": advocate, "audience_size": audience}],
            }
            response = await self.http.put(
                f"{self.redirects[i % 2]}/v1/advocates/me", json=profile, headers=self.as_advocate(advocate)
            )
            assert response.status_code == 200, response.text

        async def shareable() -> bool:
            response = await self.http.get(
                f"{self.redirects[0]}/v1/shareable", headers=self.as_advocate(next(iter(advocates)))
            )
            return {item["content_id"] for item in response.json()["items"]} == set(contents)

        await eventually(shareable, timeout_s=60)
        for i, (advocate, (team, audience)) in enumerate(advocates.items()):
            for j, (content_id, tags) in enumerate(contents.items()):
                body = {"content_id": content_id, "network": "linkedin", "message": "Worth a read"}
                response = await self.http.post(
                    f"{self.redirects[(i + j) % 2]}/v1/shares", json=body, headers=self.as_advocate(advocate)
                )
                assert response.status_code == 201, response.text
                made = response.json()
                share = Share(made["id"], made["code"], advocate, content_id, team, tags)
                self.shares.append(share)
                self.expected.add(share.dims(), "shares")
                self.expected.add(share.dims(), "reach", audience)

    async def visit_links(self, count: int) -> None:
        """Visitors, link previewers and the advocates themselves follow the links. A visitor
        keeps reaching one redirect process (the ingress hashes by client address) and clicks
        one link after another; visitors come at once."""
        trails: dict[tuple[str, bool], list[tuple[Share, dict[str, str]]]] = {}
        seen: set[tuple[str, str]] = set()
        for n in range(count):
            share = self.rng.choice(self.shares)
            if n % 12 == 0:
                ip, headers = f"192.0.2.{n % 7}", {"User-Agent": BOT_UA}
                self.expected.add(share.dims(), "bot_clicks")
            elif n % 30 == 1:
                ip = "203.0.113.200"
                headers = {"User-Agent": BROWSER_UA, **self.as_advocate(share.advocate)}
                self.expected.add(share.dims(), "self_clicks")
            else:
                ip, headers = f"198.51.100.{self.rng.randrange(40)}", {"User-Agent": BROWSER_UA}
                self.expected.add(share.dims(), "clicks")
                if (share.share_id, ip) not in seen:  # the visitor's first click on this link
                    seen.add((share.share_id, ip))
                    self.expected.add(share.dims(), "unique_clicks")
            visitor = (f"{ip} {headers['User-Agent']}", "Authorization" in headers)
            trails.setdefault(visitor, []).append((share, {**headers, "X-Forwarded-For": ip}))

        async def follow(trail: list[tuple[Share, dict[str, str]]]) -> None:
            for share, headers in trail:
                redirect = self.redirects[zlib.crc32(headers["X-Forwarded-For"].encode()) % 2]
                response = await self.visitors.get(f"{redirect}/r/{share.code}", headers=headers)
                assert response.status_code == 302, response.text
                [click_id] = parse_qs(urlsplit(response.headers["location"]).query)[CLICK_ID_PARAM]
                if headers["User-Agent"] == BROWSER_UA and "Authorization" not in headers:
                    self.human_clicks.append((share, click_id))

        await asyncio.gather(*(follow(trail) for trail in trails.values()))

    def burst_click(self, n: int) -> Event[EventData]:
        """A click as the redirect would record it, on one of 24 share ids (so that every
        partition of chorus.clicks gets some) of our advocates and contents."""
        like = self.shares[n % len(self.shares)]
        share = Share(f"{self.org}-b{n % 24}", "", like.advocate, like.content, like.team, like.tags)
        bot, unique = self.rng.random() < 0.1, self.rng.random() < 0.6
        if bot:
            self.expected.add(share.dims(), "bot_clicks")
        else:
            self.expected.add(share.dims(), "clicks")
            if unique:
                self.expected.add(share.dims(), "unique_clicks")
        click = ClickRecorded.model_validate(
            {
                "click_id": f"{self.org}-burst-{n}",
                "share_id": share.share_id,
                "advocate_id": share.advocate,
                "content_id": share.content,
                "network": "linkedin",
                "clicked_at": datetime.now(UTC),
                "visitor_hash": f"v{n}",
                "bot": bot,
                "unique": unique,
                "team": share.team,
                "tags": list(share.tags),
            }
        )
        return Event.create(click, tenant=self.org, source="/tests")

    def lead_event(self, n: int) -> Event[EventData]:
        """A lead as the conversions API emits it (the relay may publish it twice)."""
        share = self.rng.choice(self.shares)
        self.expected.add(share.dims(), "leads")
        lead = LeadCaptured(
            conversion_id=f"{self.org}-lead-{n}",
            key=share.share_id,
            customer_id=f"burst-customer-{n}",
            attributed=True,
            share_id=share.share_id,
            advocate_id=share.advocate,
            content_id=share.content,
            converted_at=datetime.now(UTC),
            network="linkedin",
            team=share.team,
            tags=list(share.tags),
        )
        return Event.create(lead, tenant=self.org, source="/tests", event_id=lead.conversion_id)

    async def post_conversions(self) -> None:
        """Leads and sales naming the visitors' clicks, to both metrics processes at once; some
        customers reported to both at the same moment (each counts once), and one lead naming no
        click we know (it counts in the totals only)."""
        mongo = create_client(self.processes.settings)
        try:
            click_index = mongo[self.processes.settings.database_name("metrics")]["click_index"]
            click_ids = [click_id for _, click_id in self.human_clicks]

            async def clicks_indexed() -> bool:
                return await click_index.count_documents({"_id": {"$in": click_ids}}) == len(click_ids)

            await eventually(clicks_indexed, timeout_s=WAIT_S)
        finally:
            await mongo.close()
        posts: list[tuple[str, dict[str, Any]]] = []
        picked = self.rng.sample(self.human_clicks, 30)
        for n, (share, click_id) in enumerate(picked):
            body: dict[str, Any] = {"type": "lead", "click_id": click_id, "customer_id": f"customer-{n}"}
            if n % 2:
                amount = Decimal(f"{10 + n}.{n:02d}")
                body.update(type="sale", amount=str(amount), currency="EUR", order_id=f"order-{n}")
                self.expected.add(share.dims(), "sales")
                self.expected.add_revenue(share.dims(), amount)
            else:
                self.expected.add(share.dims(), "leads")
            posts.append((self.projectors[n % 2], body))
            if n < 8:
                posts.append((self.projectors[(n + 1) % 2], body))
        posts.append(
            (self.projectors[0], {"type": "lead", "click_id": "no-such-click", "customer_id": "walk-in"})
        )
        self.expected.add([], "leads")

        async def post(url: str, body: dict[str, Any]) -> None:
            response = await self.http.post(f"{url}/v1/conversions", json=body, headers=self.admin)
            assert response.status_code == 200, response.text

        await asyncio.gather(*(post(url, body) for url, body in posts))


async def test_two_redirects_and_two_projectors_count_every_click_and_conversion_once(
    processes: Processes, settings: ChorusSettings
) -> None:
    bootstrap = settings.kafka_bootstrap
    group_prefix = processes.settings.consumer_group_prefix
    for group in ("sharing", "metrics", "metrics-attribution", "metrics-webhooks"):
        await skip_history(bootstrap, f"{group_prefix}.{group}", [t.name for t in TOPICS])
    everything = [*processes.sharing, *processes.metrics]
    for process in everything:
        process.start()
    try:
        await asyncio.gather(*(p.ready() for p in everything))
    except AssertionError:
        raise AssertionError(processes.tails()) from None

    producer = EventProducer(settings, client_id="two-processes-test")
    await producer.start()
    try:
        async with httpx.AsyncClient(timeout=30) as http, httpx.AsyncClient(timeout=30) as visitors:
            run = Run(processes, settings, producer, http, visitors)
            await run.make_shares()
            await run.visit_links(360)

            # A burst straight to the topics. One projector dies in the middle of it, without a
            # word (its uncommitted polls go to the other), then comes back.
            leads = [run.lead_event(n) for n in range(20)]
            await producer.publish_many([run.burst_click(n) for n in range(1500)] + leads)
            await producer.publish_many(leads[:10])  # again, as the outbox relay may
            await asyncio.sleep(1.0)
            processes.metrics[1].kill()
            await producer.publish_many([run.burst_click(n) for n in range(1500, 3000)])
            processes.metrics[1].start()
            await processes.metrics[1].ready()

            await run.post_conversions()

            want = expected_figures(run.expected)
            last: dict[str, Any] = {}

            async def exact() -> bool:
                nonlocal last
                last = await figures(http, run.projectors[0], run.admin)
                return last == want

            try:
                await eventually(exact, timeout_s=WAIT_S, interval_s=1.0)
            except AssertionError:
                raise AssertionError(f"{_differences(last, want)}\n{processes.tails()}") from None

            async def all_committed() -> bool:
                projected = [SHARES.name, CLICKS.name, CONVERSIONS.name]
                return await group_caught_up(bootstrap, f"{group_prefix}.metrics", projected)

            # Once the projectors have committed everything, nothing is left to count twice:
            # still exact, on both.
            await eventually(all_committed, timeout_s=WAIT_S, interval_s=1.0)
            for url in run.projectors:
                assert await figures(http, url, run.admin) == want, url
    finally:
        await producer.stop()


def _differences(got: dict[str, Any], want: dict[str, Any]) -> str:
    lines = []
    for part in want:
        for key in sorted(set(want[part]) | set(got.get(part, {}))):
            if part == "total":
                a, b = got.get(part), want[part]
                if a != b:
                    lines.append(f"total: got {a}, want {b}")
                break
            a, b = got.get(part, {}).get(key), want[part].get(key)
            if a != b:
                lines.append(f"{part} {key}: got {a}, want {b}")
    return "\n".join(lines) or "no difference"
