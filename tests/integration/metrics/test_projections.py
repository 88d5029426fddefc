"""The metrics projections on the real broker and SecantusDB: the funnel of a scripted scenario for
every group_by, redelivery after a crash mid-batch, a replay from offset 0, and a rebuild."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from services.metrics import rebuild as rebuild_module
from services.metrics.main import create_app
from services.metrics.modules import MetricsModules
from services.metrics.org_settings.service import ZONE_CACHE_S
from services.metrics.projections import domain
from services.metrics.projections.service import ProjectionService
from services.metrics.projections.store import FIRST_GENERATION, ProjectionStore
from services.metrics.rebuild import projection_service, rebuild, replay
from services.metrics.settings import MetricsSettings
from shared.clock import utc_now
from shared.events import Event, EventData
from shared.events.clicks import ClickRecorded
from shared.events.content import SettingsUpdated
from shared.events.conversions import LeadCaptured
from shared.events.shares import ShareMade
from shared.events.topics import CLICKS
from shared.messaging import EventProducer, skip_history
from shared.messaging.producer import Outgoing
from shared.messaging.replay import TopicRange
from shared.mongo import create_client
from shared.outbox import PAGE, Outbox, pending, with_outbox
from shared.settings import ChorusSettings
from tests.helpers import Pending, bearer, eventually, group_caught_up, new_org, running_app, tally_of
from tests.integration.metrics.scenario import (
    FIELDS,
    Scenario,
    TopicReader,
    at,
    conversion_events,
    delete_topics,
    post_conversions,
    private_topics,
    publish_activity,
    rows_by_key,
    send_to,
    skip_metrics_history,
)

pytestmark = pytest.mark.integration

TOPIC_FIELDS = {"shares_topic", "clicks_topic", "conversions_topic"}
GROUP_BYS = ("day", "week", "month", "advocate", "content", "team", "network", "tag")


@pytest.fixture(scope="module")
async def metrics_settings(settings: ChorusSettings) -> MetricsSettings:
    metrics = MetricsSettings(**settings.model_dump())
    await skip_metrics_history(metrics)
    return metrics


@pytest.fixture(scope="module")
async def producer(settings: ChorusSettings) -> AsyncIterator[EventProducer]:
    p = EventProducer(settings, client_id="metrics-tests")
    await p.start()
    yield p
    await p.stop()


def admin(settings: ChorusSettings, org: str) -> dict[str, str]:
    return bearer(settings, org=org, sub="admin-1", roles=["admin"])


async def funnel(
    client: httpx.AsyncClient, settings: ChorusSettings, s: Scenario, group_by: str, **params: str
) -> dict[str, Any]:
    response = await client.get(
        "/v1/funnel",
        params={"from": s.first.isoformat(), "to": s.today.isoformat(), "group_by": group_by, **params},
        headers=admin(settings, s.org),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def all_funnels(client: httpx.AsyncClient, settings: ChorusSettings, s: Scenario) -> dict[str, Any]:
    return {g: await funnel(client, settings, s, g) for g in GROUP_BYS}


async def run_scenario(
    client: httpx.AsyncClient, settings: ChorusSettings, producer: EventProducer
) -> Scenario:
    org = new_org()
    s = await publish_activity(producer, org)
    response = await client.put(
        "/v1/metrics/settings",
        json={"cpc": "0.50", "cpm": "4", "currency": "EUR"},
        headers=admin(settings, org),
    )
    assert response.status_code == 200, response.text

    async def clicks_visible() -> bool:
        totals = (await funnel(client, settings, s, "day"))["totals"]
        return bool(
            totals["clicks"] == 5
            and totals["bot_clicks"] == 1
            and totals["self_clicks"] == 1
            and totals["shares"] == 3
        )

    await eventually(clicks_visible, timeout_s=60)
    key = (await client.post("/v1/api-keys", json={"name": "crm"}, headers=admin(settings, org))).json()[
        "api_key"
    ]
    await post_conversions(client, s, key)

    async def conversions_visible() -> bool:
        totals = (await funnel(client, settings, s, "day"))["totals"]
        return bool(
            totals["leads"] == 1 and totals["sales"] == 2 and totals["hires"] == totals["refunds"] == 1
        )

    await eventually(conversions_visible, timeout_s=60)
    return s


async def test_a_scripted_scenario_gives_the_expected_funnel_for_every_group_by(
    metrics_settings: MetricsSettings, producer: EventProducer
) -> None:
    settings = metrics_settings
    async with running_app(create_app(settings=settings)) as client:
        s = await run_scenario(client, settings, producer)
        for group_by in GROUP_BYS:
            assert rows_by_key(await funnel(client, settings, s, group_by)) == s.expected(group_by), group_by

        # What no row holds: the sale credited to no share. With it, a breakdown adds up to the
        # totals; tags overlap and days leave nothing out, so they have none.
        for group_by in ("advocate", "content", "team", "network"):
            result = await funnel(client, settings, s, group_by)
            left = result["unassigned"]
            assert (left["key"], left["sales"], left["revenue"], left["refunded"]) == (
                "",
                1,
                {"EUR": "10.00"},
                {},
            )
            for f in FIELDS:
                assert sum(row[f] for row in [*result["rows"], left]) == result["totals"][f], (group_by, f)
        for group_by in ("tag", "day"):
            assert (await funnel(client, settings, s, group_by))["unassigned"] is None
        assert (await funnel(client, settings, s, "team", team="sales"))["unassigned"] is None

        result = await funnel(client, settings, s, "day")
        totals = result["totals"]
        assert {f: totals[f] for f in FIELDS} == {
            "shares": 3,
            "reach": 1700,
            "clicks": 5,
            "unique_clicks": 4,
            "bot_clicks": 1,
            "self_clicks": 1,
            "leads": 1,
            "sales": 2,
            "refunds": 1,
            "applications": 1,
            "hires": 1,
        }
        assert (totals["revenue"], totals["refunded"]) == ({"EUR": "100.00"}, {"EUR": "9.90"})
        assert totals["ctr"] == round(4 / 1700, 6)
        assert totals["conversion_rate"] == 0.25
        assert totals["application_rate"] == 0.25
        assert totals["emv"] == 9.3  # 5 x 0.50 + 1700 / 1000 x 4
        assert "clicks x 0.50" in result["emv"]["formula"]

        # A time grouping filtered by one dimension: alice's days.
        alice = rows_by_key(await funnel(client, settings, s, "day", advocate=s.alice))
        assert alice[s.d1.isoformat()]["clicks"] == 2 and alice[s.today.isoformat()]["sales"] == 1

        # CSV parses back to the same numbers.
        response = await client.get(
            "/v1/funnel",
            params={"from": s.first.isoformat(), "to": s.today.isoformat(), "group_by": "advocate"},
            headers={**admin(settings, s.org), "Accept": "text/csv"},
        )
        assert response.headers["content-type"].startswith("text/csv")
        parsed = {row["key"]: row for row in csv.DictReader(io.StringIO(response.text))}
        assert list(parsed)[-1] == "" and (parsed[""]["sales"], parsed[""]["revenue_EUR"]) == ("1", "10.00")
        for key, expected in s.expected("advocate").items():
            assert {f: int(parsed[key][f]) for f in FIELDS} == {f: expected[f] for f in FIELDS}
            for currency, amount in expected["revenue"].items():
                assert parsed[key][f"revenue_{currency}"] == amount

        series = await client.get(
            "/v1/timeseries",
            params={"from": s.first.isoformat(), "to": s.today.isoformat(), "metric": "clicks"},
            headers=admin(settings, s.org),
        )
        points = {p["period"]: p["value"] for p in series.json()["points"]}
        assert len(points) == 4 and points[s.d1.isoformat()] == 2 and points[s.d2.isoformat()] == 3
        revenue = await client.get(
            "/v1/timeseries",
            params={"from": s.first.isoformat(), "to": s.today.isoformat(), "metric": "revenue.EUR"},
            headers=admin(settings, s.org),
        )
        by_day = {p["period"]: p["value"] for p in revenue.json()["points"]}
        days = [(s.first + timedelta(days=n)).isoformat() for n in range(4)]
        assert by_day == dict.fromkeys(days, 0.0) | {s.today.isoformat(): 100.0}  # 99.90 + 10 - 9.90

        # The advocate's own figures.
        me = await client.get(
            "/v1/me/stats", headers=bearer(settings, org=s.org, sub=s.bob, roles=["advocate"])
        )
        assert me.status_code == 200, me.text
        assert {k: me.json()[k] for k in ("reach", "clicks", "leads")} == {
            "reach": 500,
            "clicks": 2,
            "leads": 1,
        }

        # Another organisation sees none of it.
        other = await client.get(
            "/v1/funnel",
            params={"from": s.first.isoformat(), "to": s.today.isoformat(), "group_by": "advocate"},
            headers=admin(settings, new_org()),
        )
        assert other.json()["rows"] == []


async def test_a_consumer_killed_mid_batch_and_restarted_gives_the_same_numbers(
    metrics_settings: MetricsSettings, producer: EventProducer
) -> None:
    settings = metrics_settings.model_copy(update={"consumer_group_prefix": f"crash{uuid.uuid4().hex[:6]}"})
    org, today = new_org(), datetime.now(UTC).date()
    share_id = f"{org}-s1"
    await skip_metrics_history(settings)
    events: list[Event[EventData]] = [
        Event.create(
            ClickRecorded.model_validate(
                {
                    "click_id": f"{org}-c{i}",
                    "share_id": share_id,
                    "advocate_id": f"{org}-alice",
                    "content_id": "k",
                    "network": "x",
                    "clicked_at": at(today, 8),
                    "bot": i % 10 == 0,
                    "unique": i % 3 == 0,
                    "team": "t",
                    "tags": ["a", "b"],
                }
            ),
            tenant=org,
            source="/test",
        )
        for i in range(60)
    ]
    async with TopicReader(settings, CLICKS.name) as reader:
        await producer.publish_many(events)
        delivered = await reader.collect(lambda e: e.tenant == org, count=60)
    assert len(delivered) == 60 and len({r.partition for _, r in delivered}) == 1
    partition = delivered[0][1].partition

    # The crash: a batch of the first 25 records applied to the day's totals, not to its
    # breakdowns (the second update never happened), and the offsets never committed.
    mongo = create_client(settings)
    try:
        db = mongo[settings.database_name("metrics")]
        service = projection_service(settings, db)
        pending = [
            Pending(
                effect._replace(day=today.isoformat(), dims=(("all", "*"),)),
                domain.source_of(CLICKS.name, partition),
                record.offset,
                event.id,
            )
            for event, record in delivered[:25]
            for effect in [domain.click_effect(org, event.data)]  # type: ignore[arg-type]
        ]
        await service.store.apply(await service.store.active_stats(), tally_of(pending).days.values())
    finally:
        await mongo.close()

    # The restarted consumer redelivers everything from its last commit, in other batch sizes.
    expected_clicks = sum(1 for i in range(60) if i % 10 != 0)
    expected_unique = sum(1 for i in range(60) if i % 10 != 0 and i % 3 == 0)
    day = today.isoformat()
    async with running_app(create_app(settings=settings)) as client:

        async def rows(group_by: str) -> list[tuple[str, int, int, int]]:
            response = await client.get(
                "/v1/funnel",
                params={"from": day, "to": day, "group_by": group_by},
                headers=admin(settings, org),
            )
            return [
                (r["key"], r["clicks"], r["unique_clicks"], r["bot_clicks"]) for r in response.json()["rows"]
            ]

        async def advocate_done() -> bool:
            return await rows("advocate") == [(f"{org}-alice", expected_clicks, expected_unique, 6)]

        await eventually(advocate_done, timeout_s=60)
        assert await rows("day") == [(day, expected_clicks, expected_unique, 6)]
        assert await rows("tag") == [
            ("a", expected_clicks, expected_unique, 6),
            ("b", expected_clicks, expected_unique, 6),
        ]
        assert await rows("team") == [("t", expected_clicks, expected_unique, 6)]


async def test_overlapping_redeliveries_from_several_partitions_apply_once(
    metrics_settings: MetricsSettings,
) -> None:
    """The store's guarded update, driven directly: redelivered batches with other boundaries
    (the compare-and-set collides and retries above the watermarks), a full replay, and a
    conversion published twice."""
    mongo = create_client(metrics_settings)
    db = mongo[metrics_settings.database_name("metrics")]
    store = ProjectionStore(db)
    collection, org, day = f"stats_t{uuid.uuid4().hex[:8]}", new_org(), "2026-11-02"
    effect = domain.Effect(org, day, (("all", "*"), ("advocate", "alice")), (("clicks", 1),))

    def batch(source: str, offsets: range) -> list[Pending]:
        return [Pending(effect, source, offset, f"{source}-{offset}") for offset in offsets]

    async def apply(pending: list[Pending], by_event_id: bool = False) -> None:
        await store.apply(collection, tally_of(pending).days.values(), by_event_id=by_event_id)

    async def clicks(dim: str) -> int:
        return sum(row.get("clicks", 0) for row in await store.stats_docs(collection, org, dim, day, day))

    try:
        await apply(batch("c_0", range(0, 10)) + batch("c_1", range(0, 5)))
        assert (await clicks("all"), await clicks("advocate")) == (15, 15)
        await apply(batch("c_0", range(5, 15)) + batch("c_1", range(0, 8)))
        assert (await clicks("all"), await clicks("advocate")) == (23, 23)
        await apply(batch("c_0", range(0, 15)) + batch("c_1", range(0, 8)))
        assert (await clicks("all"), await clicks("advocate")) == (23, 23)
        # A conversion event published twice lands at two offsets: it counts once.
        lead = domain.Effect(org, day, (("all", "*"),), (("leads", 1),))
        twice = [Pending(lead, "v_0", 0, "lead-1"), Pending(lead, "v_0", 1, "lead-1")]
        await apply(twice, by_event_id=True)
        await apply([Pending(lead, "v_0", 2, "lead-1")], by_event_id=True)
        rows = await store.stats_docs(collection, org, "all", day, day)
        assert sum(row.get("leads", 0) for row in rows) == 1
    finally:
        await db[collection].drop()
        await mongo.close()


class HeldProducer(EventProducer):
    """A relay's producer that stalls at its first publish until `go` is set: a replica whose
    relay read a page, then fell behind."""

    def __init__(self, settings: ChorusSettings) -> None:
        super().__init__(settings, client_id="metrics-tests-held")
        self.holding = asyncio.Event()
        self.go = asyncio.Event()

    async def publish_each(self, items: Sequence[Outgoing]) -> None:
        self.holding.set()
        await self.go.wait()
        await super().publish_each(items)


async def test_a_burst_two_relays_both_published_counts_each_share_once(
    metrics_settings: MetricsSettings,
) -> None:
    """A campaign's 1,000 shares released at once, with two replicas' outbox relays over them:
    one reads the first page and stalls, the other sends the whole burst, then the first sends
    its page again, more than the stats documents' window of event ids later. Each share counts
    once, with its reach, in the totals and for its advocate."""
    settings = metrics_settings.model_copy(update={"consumer_group_prefix": f"burst{uuid.uuid4().hex[:6]}"})
    await skip_metrics_history(settings)
    org, shared_at = new_org(), utc_now()
    day = shared_at.date().isoformat()
    mongo = create_client(settings)
    db = mongo[settings.database_name("metrics")]
    collection = f"burst_{uuid.uuid4().hex[:8]}"
    docs = []
    for i in range(1000):
        share = ShareMade(
            share_id=f"{org}-s{i}",
            advocate_id=f"{org}-a{i % 10}",
            content_id="k",
            network="x",
            code=f"c{i}",
            short_url=f"http://c/{i}",
            target_url="http://example.com",
            audience_size=i,
            shared_at=shared_at,
        )
        record = pending(Event.create(share, tenant=org, source="/test"))
        docs.append(with_outbox({"_id": share.share_id, "org": org}, [record]))
    await db[collection].insert_many(docs)
    ordinary, held = EventProducer(settings, client_id="metrics-tests-relay"), HeldProducer(settings)
    await ordinary.start()
    await held.start()
    try:
        async with running_app(create_app(settings=settings)) as client:

            async def figures(group_by: str) -> dict[str, tuple[int, int]]:
                response = await client.get(
                    "/v1/funnel",
                    params={"from": day, "to": day, "group_by": group_by},
                    headers=admin(settings, org),
                )
                assert response.status_code == 200, response.text
                return {r["key"]: (r["shares"], r["reach"]) for r in response.json()["rows"]}

            late = asyncio.create_task(Outbox(db, [collection], held).relay())
            await held.holding.wait()
            assert await Outbox(db, [collection], ordinary).relay() == 1000
            expected = {day: (1000, sum(range(1000)))}

            async def all_counted() -> bool:
                return await figures("day") == expected

            await eventually(all_counted, timeout_s=60)
            held.go.set()
            # The stalled relay's first page, but its last document (the relay holds back what
            # was written from the page's last write time on): its copies are all sent again.
            assert await late == PAGE - 1
            group = f"{settings.consumer_group_prefix}.metrics"
            bootstrap, topic = settings.kafka_bootstrap, settings.shares_topic
            await eventually(lambda: group_caught_up(bootstrap, group, [topic]), timeout_s=60)
            assert await figures("day") == expected
            assert await figures("advocate") == {
                f"{org}-a{a}": (100, sum(range(a, 1000, 10))) for a in range(10)
            }
    finally:
        await held.stop()
        await ordinary.stop()
        await db[collection].drop()
        await mongo.close()


@pytest.fixture
async def private(metrics_settings: MetricsSettings) -> AsyncIterator[MetricsSettings]:
    """Settings projecting from topics of this test's own, read from offset 0 by a new group."""
    topics = await private_topics(metrics_settings.kafka_bootstrap)
    settings = metrics_settings.model_copy(
        update={**topics, "consumer_group_prefix": f"p{uuid.uuid4().hex[:8]}"}
    )
    others = ["chorus.advocates", "chorus.training", "chorus.content"]
    await skip_history(settings.kafka_bootstrap, f"{settings.consumer_group_prefix}.metrics", others)
    yield settings
    await delete_topics(settings.kafka_bootstrap, list(topics.values()))


async def run_private_scenario(
    client: httpx.AsyncClient, settings: MetricsSettings, producer: EventProducer
) -> Scenario:
    """The scripted scenario on private topics; the conversions are the events the API would emit,
    the lead twice (as a relay that published it again would)."""
    s = await publish_activity(producer, new_org(), topics=settings.model_dump(include=TOPIC_FIELDS))
    response = await client.put(
        "/v1/metrics/settings",
        json={"cpc": "0.50", "cpm": "4", "currency": "EUR"},
        headers=admin(settings, s.org),
    )
    assert response.status_code == 200, response.text
    await send_to(producer, settings.conversions_topic, conversion_events(s))

    async def all_visible() -> bool:
        totals = (await funnel(client, settings, s, "day"))["totals"]
        wanted = {
            "shares": 3,
            "clicks": 5,
            "bot_clicks": 1,
            "self_clicks": 1,
            "leads": 1,
            "sales": 2,
            "hires": 1,
            "refunds": 1,
        }
        return all(totals[name] == value for name, value in wanted.items())

    await eventually(all_visible, timeout_s=60)
    for group_by in GROUP_BYS:
        assert rows_by_key(await funnel(client, settings, s, group_by)) == s.expected(group_by), group_by
    return s


async def test_replaying_the_topics_from_offset_zero_over_existing_projections_changes_nothing(
    private: MetricsSettings, producer: EventProducer
) -> None:
    settings = private
    async with running_app(create_app(settings=settings)) as client:
        s = await run_private_scenario(client, settings, producer)
        before = await all_funnels(client, settings, s)
        service: ProjectionService = client._transport.app.state.service.projections  # type: ignore[attr-defined]
        # Every record of the shares, clicks and conversions topics, from offset 0, applied again
        # to the live projection while the live consumer keeps running.
        replayed = await replay(
            settings, await service.store.active_stats(fresh=True), lambda done, total: None
        )
        assert replayed == 3 + 7 + 7
        assert await all_funnels(client, settings, s) == before


async def test_a_rebuild_equals_the_live_projections(
    private: MetricsSettings, producer: EventProducer
) -> None:
    settings = private
    async with running_app(create_app(settings=settings)) as client:
        s = await run_private_scenario(client, settings, producer)
        live = await all_funnels(client, settings, s)
        service: ProjectionService = client._transport.app.state.service.projections  # type: ignore[attr-defined]
        old = await service.store.active_stats(fresh=True)
        seen: list[tuple[int, int]] = []
        result = await rebuild(settings.model_copy(), lambda done, total: seen.append((done, total)))
        assert result.old_collection == old and result.new_collection != old
        assert await service.store.active_stats(fresh=True) == result.new_collection
        assert seen and seen[-1] == (17, 17) and result.events == 17
        assert await all_funnels(client, settings, s) == live
        # The rebuilt generation is the one the live projector now writes to.
        more = await publish_activity(
            producer, s.org + "-more", topics=settings.model_dump(include=TOPIC_FIELDS)
        )

        async def new_clicks_visible() -> bool:
            totals = (await funnel(client, settings, more, "day"))["totals"]
            return bool(totals["clicks"] == 5 and totals["bot_clicks"] == 1 and totals["self_clicks"] == 1)

        await eventually(new_clicks_visible, timeout_s=60)


async def test_a_rebuild_counts_once_the_events_that_arrive_while_it_runs(
    private: MetricsSettings, producer: EventProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clicks keep coming while the rebuild replays: one arrives after the first pass has read
    to its end (the live projector counts it in the old generation), and the live projector
    keeps counting more through the swap. Each is in the rebuilt generation once. All are clicks
    of one share on one day: one partition, one document, whose watermark a live write into the
    new generation would move past what the rebuild had not replayed yet."""
    settings = private
    org = new_org()
    clicked_at = utc_now()
    day = clicked_at.date().isoformat()
    sent = 0

    async def click() -> None:
        nonlocal sent
        data = ClickRecorded.model_validate(
            {
                "click_id": f"{org}-c{sent}",
                "share_id": f"{org}-s1",
                "advocate_id": f"{org}-alice",
                "content_id": f"{org}-k1",
                "network": "linkedin",
                "clicked_at": clicked_at,
            }
        )
        await send_to(producer, settings.clicks_topic, [Event.create(data, tenant=org, source="/test")])
        sent += 1

    async with running_app(create_app(settings=settings)) as client:

        async def clicks() -> int:
            response = await client.get(
                "/v1/funnel",
                params={"from": day, "to": day, "group_by": "day"},
                headers=admin(settings, org),
            )
            assert response.status_code == 200, response.text
            return int(response.json()["totals"]["clicks"])

        async def all_counted() -> bool:
            return await clicks() == sent

        for _ in range(3):
            await click()
        await eventually(all_counted, timeout_s=60)

        first_pass = rebuild_module._replay
        passes = 0

        async def click_after_the_first_pass(*args: Any, **kwargs: Any) -> tuple[TopicRange, int]:
            nonlocal passes
            result = await first_pass(*args, **kwargs)
            passes += 1
            if passes == 1:  # past the first pass's end offsets, counted live (old generation)
                await click()
                await eventually(all_counted, timeout_s=60)
            return result

        monkeypatch.setattr(rebuild_module, "_replay", click_after_the_first_pass)
        stop = asyncio.Event()

        async def keep_clicking() -> None:
            while not stop.is_set():
                await click()
                await asyncio.sleep(0.1)

        clicking = asyncio.create_task(keep_clicking())
        try:
            result = await rebuild(settings.model_copy(), lambda done, total: None)
        finally:
            stop.set()
            await clicking
        service: ProjectionService = client._transport.app.state.service.projections  # type: ignore[attr-defined]
        assert await service.store.active_stats(fresh=True) == result.new_collection
        with contextlib.suppress(AssertionError):  # the assertion below says by how much
            await eventually(all_counted, timeout_s=30)
        await asyncio.sleep(2)  # and not more than once, once the live projector is idle
        assert await clicks() == sent


async def test_a_rebuilds_hold_keeps_the_live_projector_waiting_until_the_swap_or_its_end(
    metrics_settings: MetricsSettings,
) -> None:
    """The live projector waits for a held handover; readers do not. A hold let go, or past its
    time (its rebuild died), keeps nobody waiting. A database of its own: a hold would stop the
    other tests' projectors."""
    mongo = create_client(metrics_settings)
    name = f"test_hold_{uuid.uuid4().hex[:8]}"
    try:
        store = ProjectionStore(mongo[name])
        await store.hold_stats(utc_now() + timedelta(seconds=60))
        waiting = asyncio.create_task(store.live_stats())
        await asyncio.sleep(1)
        assert not waiting.done()
        assert await store.active_stats(fresh=True) == FIRST_GENERATION
        assert await store.swap_stats("stats_g7") == FIRST_GENERATION
        assert await asyncio.wait_for(waiting, 5) == "stats_g7"

        await store.hold_stats(utc_now() + timedelta(seconds=60))
        await store.hold_stats(None)
        assert await asyncio.wait_for(ProjectionStore(mongo[name]).live_stats(), 1) == "stats_g7"

        await store.hold_stats(utc_now() - timedelta(seconds=1))
        assert await asyncio.wait_for(ProjectionStore(mongo[name]).live_stats(), 1) == "stats_g7"
    finally:
        await mongo.drop_database(name)
        await mongo.close()


# --- time zones --------------------------------------------------------------------------------

LOS_ANGELES = "America/Los_Angeles"


async def set_time_zone(
    client: httpx.AsyncClient, settings: MetricsSettings, producer: EventProducer, org: str, zone: str
) -> None:
    """The content service's settings event with `zone`, and metrics having read it."""
    await producer.publish_many(
        [Event.create(SettingsUpdated(org_id=org, time_zone=zone), tenant=org, source="/test")]
    )

    async def seen() -> bool:
        response = await client.get("/v1/metrics/settings", headers=admin(settings, org))
        return bool(response.json()["time_zone"] == zone)

    await eventually(seen, timeout_s=60)
    await asyncio.sleep(ZONE_CACHE_S)  # what the projector read of the zone before is stale now


def evening_activity(org: str, day: date) -> list[Event[EventData]]:
    """A share at 16:00, a click at 17:00 and a lead at 17:30 on `day` in Los Angeles: after
    midnight UTC for the click and the lead (01:00 UTC the next day in winter)."""
    local = ZoneInfo(LOS_ANGELES)
    share_id, click_id = f"{org}-s1", f"{org}-c1"
    share = ShareMade(
        share_id=share_id,
        advocate_id=f"{org}-alice",
        content_id=f"{org}-k1",
        network="linkedin",
        code="c",
        short_url="http://c/c",
        target_url="http://example.com",
        audience_size=100,
        shared_at=datetime.combine(day, time(16), tzinfo=local),
    )
    click = ClickRecorded.model_validate(
        {
            "click_id": click_id,
            "share_id": share_id,
            "advocate_id": f"{org}-alice",
            "content_id": f"{org}-k1",
            "network": "linkedin",
            "clicked_at": datetime.combine(day, time(17), tzinfo=local).astimezone(UTC),
            "unique": True,
        }
    )
    lead = LeadCaptured(
        conversion_id=f"{org}-v1",
        key=share_id,
        click_id=click_id,
        customer_id="cust1",
        attributed=True,
        share_id=share_id,
        advocate_id=f"{org}-alice",
        content_id=f"{org}-k1",
        converted_at=datetime.combine(day, time(17, 30), tzinfo=local).astimezone(UTC),
        network="linkedin",
    )
    return [Event.create(data, tenant=org, source="/test") for data in (share, click, lead)]


async def test_an_organisations_days_weeks_and_months_follow_its_time_zone_and_a_rebuild_moves_history(
    private: MetricsSettings, producer: EventProducer
) -> None:
    """An organisation in Los Angeles sees its 17:00 click (01:00 UTC the next day) on its own
    day in the funnel, the time series, the CSV and a goal; a rebuild equals the live counters;
    after it changes its zone, the live counters keep history where it was counted and
    `chorus rebuild metrics` puts it on the days of the new zone."""
    settings = private
    org = new_org()
    day = datetime.now(UTC).date() - timedelta(days=3)
    next_day = day + timedelta(days=1)
    span = {"from": (day - timedelta(days=1)).isoformat(), "to": next_day.isoformat()}
    share, click, lead = evening_activity(org, day)
    assert click.data.clicked_at.astimezone(UTC).date() == next_day  # type: ignore[attr-defined]
    async with running_app(create_app(settings=settings)) as client:
        headers = admin(settings, org)
        await set_time_zone(client, settings, producer, org, LOS_ANGELES)
        await send_to(producer, settings.shares_topic, [share])
        await send_to(producer, settings.clicks_topic, [click])
        await send_to(producer, settings.conversions_topic, [lead])

        async def by(group_by: str, **params: str) -> dict[str, Any]:
            response = await client.get("/v1/funnel", params={**span, "group_by": group_by}, headers=headers)
            assert response.status_code == 200, response.text
            return {
                row["key"]: (row["shares"], row["clicks"], row["leads"]) for row in response.json()["rows"]
            }

        async def counted() -> bool:
            return await by("advocate") == {f"{org}-alice": (1, 1, 1)}

        await eventually(counted, timeout_s=60)

        async def figures_on(local_day: date) -> None:
            """Every report puts the share, the click and the lead on `local_day`."""
            assert await by("day") == {local_day.isoformat(): (1, 1, 1)}
            monday = local_day - timedelta(days=local_day.weekday())
            assert await by("week") == {monday.isoformat(): (1, 1, 1)}
            assert await by("month") == {local_day.strftime("%Y-%m"): (1, 1, 1)}
            series = await client.get(
                "/v1/timeseries", params={**span, "metric": "clicks", "interval": "day"}, headers=headers
            )
            points = {p["period"]: p["value"] for p in series.json()["points"]}
            assert points == {
                d.isoformat(): float(d == local_day) for d in (day - timedelta(days=1), day, next_day)
            }
            exported = await client.get(
                "/v1/funnel", params={**span, "group_by": "day"}, headers={**headers, "Accept": "text/csv"}
            )
            rows = {row["key"]: row for row in csv.DictReader(io.StringIO(exported.text))}
            assert set(rows) == {local_day.isoformat()} and rows[local_day.isoformat()]["clicks"] == "1"
            for goal_day, expected in (
                (day, float(local_day == day)),
                (next_day, float(local_day == next_day)),
            ):
                goal = await client.post(
                    "/v1/goals",
                    json={
                        "name": f"clicks on {goal_day}",
                        "metric": "clicks",
                        "target": 1,
                        "starts_on": goal_day.isoformat(),
                        "ends_on": goal_day.isoformat(),
                    },
                    headers=headers,
                )
                assert goal.status_code == 201, goal.text
                assert goal.json()["value"] == expected, goal_day

        await figures_on(day)  # 17:00 in Los Angeles: that day, not the UTC day after
        live = {g: await by(g) for g in GROUP_BYS}
        await rebuild(settings.model_copy(), lambda done, total: None)
        assert {g: await by(g) for g in GROUP_BYS} == live

        # The organisation moves to UTC: history stays on the days it was counted on until a
        # rebuild puts it on the days of the new zone.
        await set_time_zone(client, settings, producer, org, "UTC")
        assert await by("day") == {day.isoformat(): (1, 1, 1)}
        await rebuild(settings.model_copy(), lambda done, total: None)
        await figures_on(next_day)

        # New events count in the new zone live, and a rebuild still equals the live counters.
        late = Event.create(
            click.data.model_copy(update={"click_id": f"{org}-c2"}), tenant=org, source="/test"
        )
        await send_to(producer, settings.clicks_topic, [late])

        async def late_counted() -> bool:
            return await by("day") == {next_day.isoformat(): (1, 2, 1)}

        await eventually(late_counted, timeout_s=60)
        live = {g: await by(g) for g in GROUP_BYS}
        await rebuild(settings.model_copy(), lambda done, total: None)
        assert {g: await by(g) for g in GROUP_BYS} == live

        # "Today" is the organisation's day: at 01:00 UTC it is still yesterday in Los Angeles.
        metrics: MetricsModules = client._transport.app.state.service  # type: ignore[attr-defined]
        await set_time_zone(client, settings, producer, org, LOS_ANGELES)
        metrics.analytics.clock = lambda: datetime(2026, 5, 2, 1, 0, tzinfo=UTC)
        try:
            horizon = await client.post(
                "/v1/goals",
                json={"name": "h", "metric": "clicks", "target": 10, "horizon_months": 1},
                headers=headers,
            )
            assert horizon.json()["starts_on"] == "2026-05-01"
        finally:
            metrics.analytics.clock = utc_now
