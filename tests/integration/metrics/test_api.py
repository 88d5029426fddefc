"""The metrics HTTP API on the real broker and SecantusDB: conversions and API keys, goals, surveys,
program figures and erasure."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.metrics.analytics.domain import FUNNEL_METRICS
from services.metrics.api_keys.store import API_KEYS
from services.metrics.attribution.store import CONVERSIONS as CONVERSIONS_COLLECTION
from services.metrics.attribution.store import CUSTOMERS
from services.metrics.goals.domain import Goal
from services.metrics.goals.store import GOAL_SNAPSHOTS, GOALS, GoalStore
from services.metrics.main import create_app
from services.metrics.modules import MetricsModules
from services.metrics.settings import MetricsSettings
from services.metrics.surveys.store import SURVEYS
from services.metrics.webhooks.store import ENDPOINTS as WEBHOOK_ENDPOINTS
from services.metrics.webhooks.store import REPLAYS as WEBHOOK_REPLAYS
from shared import idempotency
from shared.events import Event, EventData
from shared.events.advocates import AdvocateEnrolled, AdvocateErased, AdvocateUpdated
from shared.events.clicks import ClickRecorded
from shared.events.conversions import HireMade, LeadCaptured, SaleRefunded
from shared.events.personal import is_pseudonym
from shared.events.shares import ShareMade
from shared.events.topics import CONVERSIONS, SHARES
from shared.events.training import CourseCompleted
from shared.messaging import EventProducer
from shared.messaging.producer import event_headers
from shared.mongo import create_client
from shared.outbox import OUTBOX_SINCE, PAGE, PENDING_FILTER
from shared.settings import ChorusSettings
from tests.helpers import bearer, eventually, http_server, new_org, running_app
from tests.integration.metrics.scenario import TopicReader, skip_metrics_history
from tests.integration.query_plans import plan_stages, uses_an_index

pytestmark = pytest.mark.integration

WAIT_S = 90  # the shared stack is busy; the first start also catches up on the topics


@pytest.fixture(scope="module")
async def metrics_settings(settings: ChorusSettings) -> MetricsSettings:
    metrics = MetricsSettings(**settings.model_dump())
    await skip_metrics_history(metrics)
    return metrics


@pytest.fixture(scope="module")
async def producer(settings: ChorusSettings) -> AsyncIterator[EventProducer]:
    p = EventProducer(settings, client_id="metrics-api-tests")
    await p.start()
    yield p
    await p.stop()


@pytest.fixture(scope="module")
async def client(metrics_settings: MetricsSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(create_app(settings=metrics_settings)) as c:
        yield c


def admin(settings: ChorusSettings, org: str) -> dict[str, str]:
    return bearer(settings, org=org, sub="admin-1", roles=["admin"])


def share(org: str, name: str, advocate: str, when: datetime, audience: int = 100) -> Event[EventData]:
    return Event.create(
        ShareMade(
            share_id=f"{org}-{name}",
            advocate_id=advocate,
            content_id=f"{org}-k",
            network="x",
            code=name,
            short_url="http://c/x",
            target_url="http://example.com",
            audience_size=audience,
            team="t",
            shared_at=when,
        ),
        tenant=org,
        source="/test",
    )


def click(
    org: str,
    name: str,
    share_name: str,
    advocate: str,
    when: datetime,
    visitor: str,
    *,
    own: bool = False,
    content_type: str | None = None,
    tracked: bool = True,
) -> Event[EventData]:
    return Event.create(
        ClickRecorded.model_validate(
            {
                "click_id": f"{org}-{name}",
                "share_id": f"{org}-{share_name}",
                "advocate_id": advocate,
                "content_id": f"{org}-k",
                "network": "x",
                "clicked_at": when,
                "visitor_hash": visitor,
                "team": "t",
                "self": own,
                "content_type": content_type,
                "tracked": tracked,
            }
        ),
        tenant=org,
        source="/test",
    )


async def totals(
    client: httpx.AsyncClient, settings: ChorusSettings, org: str, days: int = 60
) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    response = await client.get(
        "/v1/funnel",
        params={"from": (today - timedelta(days=days)).isoformat(), "to": today.isoformat()},
        headers=admin(settings, org),
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["totals"]
    return result


async def wait_for_clicks(client: httpx.AsyncClient, settings: ChorusSettings, org: str, count: int) -> None:
    async def visible() -> bool:
        t = await totals(client, settings, org)
        return bool(t["clicks"] + t["bot_clicks"] + t["self_clicks"] >= count)

    await eventually(visible, timeout_s=WAIT_S)


async def test_conversions_are_attributed_deduplicated_and_authenticated(
    client: httpx.AsyncClient, metrics_settings: MetricsSettings, producer: EventProducer
) -> None:
    settings, org, other_org = metrics_settings, new_org(), new_org()
    now = datetime.now(UTC)
    alice, bob = f"{org}-alice", f"{org}-bob"
    await producer.publish_many(
        [
            share(org, "s1", alice, now - timedelta(hours=5)),
            share(org, "s2", bob, now - timedelta(hours=4)),
            click(org, "c1", "s1", alice, now - timedelta(hours=3), "visitor-1"),
            click(org, "c2", "s2", bob, now - timedelta(hours=2), "visitor-1"),
            click(org, "old", "s1", alice, now - timedelta(days=40), "visitor-2"),
            click(other_org, "theirs", "s9", "someone", now - timedelta(hours=1), "visitor-3"),
        ]
    )
    await wait_for_clicks(client, settings, org, 3)
    await wait_for_clicks(client, settings, other_org, 1)
    created = await client.post("/v1/api-keys", json={"name": "crm"}, headers=admin(settings, org))
    assert created.status_code == 201, created.text
    key, key_id = created.json()["api_key"], created.json()["key_id"]
    with_key = {"X-API-Key": key}

    async with TopicReader(settings, CONVERSIONS.name) as reader:
        lead = {"type": "lead", "click_id": f"{org}-c2", "customer_id": "cust-1"}
        first = await client.post("/v1/conversions", json=lead, headers={**with_key, "Idempotency-Key": "k1"})
        assert first.status_code == 200, first.text
        body = first.json()
        assert (body["attributed"], body["advocate_id"], body["share_id"]) == (True, bob, f"{org}-s2")
        assert body["credits"] == [
            {"advocate_id": alice, "share_id": f"{org}-s1", "last_touch": 0.0, "linear": 0.5},
            {"advocate_id": bob, "share_id": f"{org}-s2", "last_touch": 1.0, "linear": 0.5},
        ]
        # The same request again: the same answer, nothing new.
        again = await client.post("/v1/conversions", json=lead, headers={**with_key, "Idempotency-Key": "k1"})
        assert again.json() == body and again.headers["idempotent-replayed"] == "true"
        # The same customer and type under another key counts once.
        duplicate = await client.post(
            "/v1/conversions", json=lead, headers={**with_key, "Idempotency-Key": "k2"}
        )
        assert duplicate.json()["duplicate"] is True
        assert duplicate.json()["conversion_id"] == body["conversion_id"]
        # The customer was reached by c2, once however often the lead is reported; and a report
        # that stopped after recording the lead, before that touch, has it written by its retry.
        attribution = client._transport.app.state.service.attribution.store  # type: ignore[attr-defined]
        assert [t.click_id for t in await attribution.customer_touches(org, "cust-1")] == [f"{org}-c2"]
        await attribution.tenants.of(org, CUSTOMERS).delete_many({})
        retried = await client.post(
            "/v1/conversions", json=lead, headers={**with_key, "Idempotency-Key": "k3"}
        )
        assert retried.json()["duplicate"] is True
        assert [t.click_id for t in await attribution.customer_touches(org, "cust-1")] == [f"{org}-c2"]

        events = await reader.collect(lambda e: e.tenant == org, count=1)
        event = events[0][0]
        assert isinstance(event.data, LeadCaptured)
        assert event.data.conversion_id == body["conversion_id"] and event.data.advocate_id == bob
        assert event.data.key == f"{org}-s2" and len(event.data.credits) == 2

    unknown = await client.post(
        "/v1/conversions",
        headers=with_key,
        json={
            "type": "sale",
            "click_id": "nope",
            "customer_id": "cust-2",
            "amount": "19.99",
            "currency": "EUR",
            "order_id": "o-1",
        },
    )
    assert unknown.status_code == 200, unknown.text
    assert (unknown.json()["attributed"], unknown.json()["reason"]) == (False, "unknown click id")
    theirs = await client.post(
        "/v1/conversions",
        headers=with_key,
        json={"type": "lead", "click_id": f"{other_org}-theirs", "customer_id": "cust-3"},
    )
    assert (theirs.json()["attributed"], theirs.json()["reason"]) == (False, "unknown click id")
    expired = await client.post(
        "/v1/conversions",
        headers=with_key,
        json={"type": "lead", "click_id": f"{org}-old", "customer_id": "cust-4"},
    )
    assert expired.json()["attributed"] is False and "window" in expired.json()["reason"]

    async def counted() -> bool:
        t = await totals(client, settings, org)
        return bool(t["leads"] == 3 and t["sales"] == 1 and t["revenue"] == {"EUR": "19.99"})

    await eventually(counted, timeout_s=WAIT_S)

    for bad in (
        {"type": "sale", "customer_id": "c", "amount": "0", "currency": "EUR"},
        {"type": "sale", "customer_id": "c", "amount": "-3", "currency": "EUR"},
        {"type": "sale", "customer_id": "c", "amount": "ten", "currency": "EUR"},
        {"type": "sale", "customer_id": "c", "amount": "10", "currency": "eur"},
        {"type": "sale", "customer_id": "c", "amount": "10", "currency": "EURO"},
        {"type": "sale", "customer_id": "c", "amount": "10", "currency": "ABC"},
        {"type": "sale", "customer_id": "c", "amount": "12.345", "currency": "EUR"},
        {"type": "sale", "customer_id": "c", "amount": "1.5", "currency": "JPY"},
        {"type": "sale", "customer_id": "c", "currency": "EUR"},
        {"type": "lead", "customer_id": "c", "amount": "10", "currency": "EUR"},
        {"type": "refund", "customer_id": "c"},
        {"type": "lead", "customer_id": "c", "extra": 1},
    ):
        response = await client.post("/v1/conversions", json=bad, headers=with_key)
        assert response.status_code == 422, (bad, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")

    lead_body = {"type": "lead", "customer_id": "c-auth"}
    assert (await client.post("/v1/conversions", json=lead_body)).status_code == 401
    wrong = {"X-API-Key": f"chorus_{key_id}_not-the-secret"}
    assert (await client.post("/v1/conversions", json=lead_body, headers=wrong)).status_code == 401
    assert (
        await client.post("/v1/conversions", json=lead_body, headers={"X-API-Key": "nope"})
    ).status_code == 401
    advocate = bearer(settings, org=org, sub=alice, roles=["advocate"])
    assert (await client.post("/v1/conversions", json=lead_body, headers=advocate)).status_code == 403
    # Another organisation cannot revoke the key; its owner can, and then the key stops working.
    assert (
        await client.delete(f"/v1/api-keys/{key_id}", headers=admin(settings, other_org))
    ).status_code == 404
    revoked = await client.delete(f"/v1/api-keys/{key_id}", headers=admin(settings, org))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert (await client.post("/v1/conversions", json=lead_body, headers=with_key)).status_code == 401
    # An admin token works without a key.
    by_admin = await client.post("/v1/conversions", json=lead_body, headers=admin(settings, org))
    assert by_admin.status_code == 200 and by_admin.json()["attributed"] is False

    listed = await client.get("/v1/api-keys", headers=admin(settings, org))
    assert [k["key_id"] for k in listed.json()["items"]] == [key_id]
    assert "api_key" not in listed.json()["items"][0]
    assert (await client.get("/v1/api-keys", headers=admin(settings, other_org))).json()["items"] == []


async def test_every_order_of_a_returning_customer_counts_and_the_same_order_once(
    client: httpx.AsyncClient, metrics_settings: MetricsSettings
) -> None:
    settings, org = metrics_settings, new_org()
    crm = admin(settings, org)

    async def sale(order_id: str | None, amount: str) -> httpx.Response:
        body = {"type": "sale", "customer_id": "returning", "amount": amount, "currency": "EUR"}
        return await client.post("/v1/conversions", json={**body, "order_id": order_id}, headers=crm)

    first, second, first_again = (
        await sale("o-1", "10.00"),
        await sale("o-2", "25.50"),
        await sale("o-1", "10.00"),
    )
    assert [r.json()["duplicate"] for r in (first, second, first_again)] == [False, False, True]
    assert first_again.json()["conversion_id"] == first.json()["conversion_id"]
    assert (second.json()["order_id"], second.json()["amount"]) == ("o-2", "25.50")

    async def counted() -> bool:
        t = await totals(client, settings, org)
        return bool(t["sales"] == 2 and t["revenue"] == {"EUR": "35.50"})

    await eventually(counted, timeout_s=WAIT_S)

    no_order = await sale(None, "5")
    assert no_order.status_code == 422 and no_order.json()["errors"][0]["field"] == "order_id"
    lead_with_order = {"type": "lead", "customer_id": "returning", "order_id": "o-3"}
    refused = await client.post("/v1/conversions", json=lead_with_order, headers=crm)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "order_id"
    assert (await totals(client, settings, org))["sales"] == 2  # nothing written by the refusals


def refunds_of(org: str) -> Callable[[Event[EventData]], bool]:
    return lambda e: e.tenant == org and e.type == SaleRefunded.event_type


async def test_a_refund_gives_back_at_most_what_remains_of_its_sale(
    client: httpx.AsyncClient, metrics_settings: MetricsSettings
) -> None:
    settings, org = metrics_settings, new_org()
    crm = admin(settings, org)
    sale = {"type": "sale", "customer_id": "c1", "amount": "100.00", "currency": "EUR", "order_id": "o-1"}
    sold = await client.post("/v1/conversions", json=sale, headers=crm)
    assert sold.status_code == 200, sold.text

    async def refund(**fields: str) -> httpx.Response:
        body = {"type": "refund", "customer_id": "c1", "order_id": "o-1", "amount": "30", "currency": "EUR"}
        return await client.post("/v1/conversions", json={**body, **fields}, headers=crm)

    async with TopicReader(settings, CONVERSIONS.name) as reader:
        first = await refund()
        assert first.status_code == 200, first.text
        [(partial, _)] = await reader.collect(refunds_of(org), count=1)
    assert isinstance(partial.data, SaleRefunded) and partial.data.fully_refunded is False
    assert (first.json()["type"], first.json()["sale_id"], first.json()["amount"]) == (
        "refund",
        sold.json()["conversion_id"],
        "30",
    )
    for fields, field, message in (
        ({"amount": "70.01"}, "amount", "what remains of the sale (70 EUR)"),
        ({"order_id": "o-2"}, "order_id", "no sale"),
        ({"customer_id": "c2"}, "order_id", "no sale"),
        ({"currency": "USD"}, "currency", "EUR"),
        ({"click_id": "k"}, "click_id", "follows its sale"),
    ):
        refused = await refund(**fields)
        assert refused.status_code == 422, (fields, refused.text)
        assert refused.json()["errors"][0]["field"] == field and message in refused.json()["detail"]
    async with TopicReader(settings, CONVERSIONS.name) as reader:
        assert (await refund(amount="70")).status_code == 200  # all that remains
        [(ending, _)] = await reader.collect(refunds_of(org), count=1)
    assert (
        isinstance(ending.data, SaleRefunded) and ending.data.fully_refunded is True
    )  # recognition reads it
    assert (await refund(amount="0.01")).json()["errors"][0]["field"] == "amount"

    async def net() -> bool:
        t = await totals(client, settings, org)
        return bool(
            (t["sales"], t["refunds"], t["revenue"], t["refunded"])
            == (1, 2, {"EUR": "0.00"}, {"EUR": "100.00"})
        )

    await eventually(net, timeout_s=WAIT_S)


async def test_a_backdated_sale_counts_on_the_day_it_happened(
    client: httpx.AsyncClient, metrics_settings: MetricsSettings
) -> None:
    settings, org = metrics_settings, new_org()
    crm = admin(settings, org)
    today = datetime.now(UTC).date()
    three_days_ago = datetime.now(UTC) - timedelta(days=3)
    sale = {"type": "sale", "customer_id": "c", "amount": "40", "currency": "EUR", "order_id": "o-1"}
    recorded = await client.post(
        "/v1/conversions", json={**sale, "occurred_at": three_days_ago.isoformat()}, headers=crm
    )
    assert recorded.status_code == 200, recorded.text
    assert recorded.json()["converted_at"].startswith(three_days_ago.date().isoformat())

    async def on_its_day() -> bool:
        series = await client.get(
            "/v1/timeseries",
            params={
                "metric": "sales",
                "from": (today - timedelta(days=5)).isoformat(),
                "to": today.isoformat(),
            },
            headers=crm,
        )
        by_day = {p["period"]: p["value"] for p in series.json()["points"]}
        return bool(by_day.get(three_days_ago.date().isoformat()) == 1 and by_day.get(today.isoformat()) == 0)

    await eventually(on_its_day, timeout_s=WAIT_S)

    for when, message in (
        (datetime.now(UTC) + timedelta(hours=1), "future"),
        (datetime.now(UTC) - timedelta(days=90), "attribution window"),
    ):
        bad = {**sale, "order_id": f"o-{message}", "occurred_at": when.isoformat()}
        refused = await client.post("/v1/conversions", json=bad, headers=crm)
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "occurred_at"
        assert message in refused.json()["detail"]
    assert (await totals(client, settings, org))["sales"] == 1  # nothing written by the refusals


async def test_a_day_of_more_refunds_than_sales_exports_its_negative_revenue_as_a_number(
    client: httpx.AsyncClient, metrics_settings: MetricsSettings
) -> None:
    settings, org = metrics_settings, new_org()
    crm = admin(settings, org)
    today = datetime.now(UTC).date()
    sale = {"type": "sale", "customer_id": "c", "amount": "80", "currency": "EUR", "order_id": "o-1"}
    backdated = {**sale, "occurred_at": (datetime.now(UTC) - timedelta(days=2)).isoformat()}
    assert (await client.post("/v1/conversions", json=backdated, headers=crm)).status_code == 200
    refund = {"type": "refund", "customer_id": "c", "order_id": "o-1", "amount": "50", "currency": "EUR"}
    assert (await client.post("/v1/conversions", json=refund, headers=crm)).status_code == 200

    async def exported() -> dict[str, dict[str, str]]:
        response = await client.get(
            "/v1/funnel",
            params={
                "from": (today - timedelta(days=3)).isoformat(),
                "to": today.isoformat(),
                "group_by": "day",
            },
            headers={**crm, "Accept": "text/csv"},
        )
        assert response.status_code == 200, response.text
        return {row["key"]: row for row in csv.DictReader(io.StringIO(response.text))}

    async def both_counted() -> bool:
        return today.isoformat() in await exported()

    await eventually(both_counted, timeout_s=WAIT_S)
    rows = await exported()
    # A spreadsheet's SUM of the column gives the net 30.00: no cell is text.
    assert rows[today.isoformat()]["revenue_EUR"] == "-50.00"
    assert rows[(today - timedelta(days=2)).isoformat()]["revenue_EUR"] == "80.00"


async def test_an_advocates_own_click_never_earns_credit(
    client: httpx.AsyncClient, metrics_settings: MetricsSettings, producer: EventProducer
) -> None:
    settings, org = metrics_settings, new_org()
    now = datetime.now(UTC)
    alice, bob = f"{org}-alice", f"{org}-bob"
    await producer.publish_many(
        [
            share(org, "s1", alice, now - timedelta(hours=5)),
            share(org, "s2", bob, now - timedelta(hours=4)),
            click(org, "own-only", "s1", alice, now - timedelta(hours=3), "alice-herself", own=True),
            click(org, "bob-first", "s2", bob, now - timedelta(hours=3), "visitor-2"),
            click(org, "own-then", "s1", alice, now - timedelta(hours=2), "visitor-2", own=True),
        ]
    )
    await wait_for_clicks(client, settings, org, 3)
    crm = admin(settings, org)

    alone = await client.post(
        "/v1/conversions",
        json={"type": "lead", "click_id": f"{org}-own-only", "customer_id": "a"},
        headers=crm,
    )
    assert (alone.json()["attributed"], alone.json()["advocate_id"]) == (False, None)
    assert alone.json()["reason"] == "the only click is the advocate's own, and a self-click earns no credit"
    assert alone.json()["credits"] == []

    # The customer also came through Bob's link: Bob is credited, Alice's own click earns nothing.
    shared = await client.post(
        "/v1/conversions",
        json={"type": "lead", "click_id": f"{org}-own-then", "customer_id": "b"},
        headers=crm,
    )
    assert (shared.json()["attributed"], shared.json()["advocate_id"]) == (True, bob)
    assert [c["advocate_id"] for c in shared.json()["credits"]] == [bob]


async def test_a_hire_is_credited_through_its_candidates_application_on_a_job_opening(
    client: httpx.AsyncClient, metrics_settings: MetricsSettings, producer: EventProducer
) -> None:
    settings, org = metrics_settings, new_org()
    now = datetime.now(UTC)
    bob = f"{org}-bob"
    await producer.publish_many(
        [
            share(org, "s1", bob, now - timedelta(hours=5)),
            click(org, "job", "s1", bob, now - timedelta(hours=3), "v1", content_type="job_opening"),
            click(org, "post", "s1", bob, now - timedelta(hours=3), "v2", content_type="article"),
        ]
    )
    await wait_for_clicks(client, settings, org, 2)
    crm = admin(settings, org)

    async def post(body: dict[str, Any]) -> httpx.Response:
        return await client.post("/v1/conversions", json=body, headers=crm)

    not_a_job = await post({"type": "application", "click_id": f"{org}-post", "customer_id": "cand-1"})
    assert not_a_job.status_code == 422 and not_a_job.json()["errors"][0]["field"] == "click_id"
    assert "job opening" in not_a_job.json()["detail"]
    hire_naming_a_click = await post({"type": "hire", "click_id": f"{org}-job", "customer_id": "cand-1"})
    assert hire_naming_a_click.status_code == 422
    assert hire_naming_a_click.json()["errors"][0]["field"] == "click_id"
    no_application = await post({"type": "hire", "customer_id": "cand-2"})
    assert (no_application.json()["attributed"], no_application.json()["reason"]) == (
        False,
        "no application of this candidate was recorded",
    )

    # Nothing of the refusals was kept: the candidate's application counts now, once.
    application = await post({"type": "application", "click_id": f"{org}-job", "customer_id": "cand-1"})
    again = await post({"type": "application", "click_id": f"{org}-job", "customer_id": "cand-1"})
    assert (application.json()["attributed"], application.json()["advocate_id"]) == (True, bob)
    assert (again.json()["duplicate"], again.json()["conversion_id"]) == (
        True,
        application.json()["conversion_id"],
    )
    hire = (await post({"type": "hire", "customer_id": "cand-1"})).json()
    assert (hire["attributed"], hire["advocate_id"], hire["share_id"]) == (True, bob, f"{org}-s1")
    assert hire["application_id"] == application.json()["conversion_id"]
    assert hire["credits"] == application.json()["credits"] and hire["click_id"] is None

    async def counted() -> bool:
        t = await totals(client, settings, org)
        return bool((t["applications"], t["hires"], t["leads"]) == (1, 2, 0))

    await eventually(counted, timeout_s=WAIT_S)
    by_advocate = await client.get(
        "/v1/funnel",
        # The clicks may fall on yesterday (UTC) and the application on today.
        params={
            "from": (now - timedelta(days=1)).date().isoformat(),
            "to": now.date().isoformat(),
            "group_by": "advocate",
        },
        headers=crm,
    )
    [row] = by_advocate.json()["rows"]
    assert (row["key"], row["applications"], row["hires"]) == (bob, 1, 1)  # the unattributed hire is no one's
    assert row["application_rate"] == 0.5  # one application over two unique clicks
    goal = {"name": "Hires", "metric": "hires", "target": 3, "horizon_months": 3}
    assert (await client.post("/v1/goals", json=goal, headers=crm)).status_code == 201


async def test_without_tracking_consent_clicks_count_for_the_content_not_the_advocate(
    client: httpx.AsyncClient, metrics_settings: MetricsSettings, producer: EventProducer
) -> None:
    settings, org = metrics_settings, new_org()
    now = datetime.now(UTC)
    bob = f"{org}-bob"
    withdrawn = AdvocateUpdated(advocate_id=bob, team="t", tracking_consent=False)
    await producer.publish_many(
        [
            Event.create(withdrawn, tenant=org, source="/test"),
            share(org, "s1", bob, now - timedelta(hours=5)),
            click(org, "before", "s1", bob, now - timedelta(hours=4), "v1"),
            click(org, "after", "s1", bob, now - timedelta(hours=3), "v2", tracked=False),
        ]
    )
    await wait_for_clicks(client, settings, org, 2)
    crm = admin(settings, org)
    lead = await client.post(
        "/v1/conversions", json={"type": "lead", "click_id": f"{org}-after", "customer_id": "c1"}, headers=crm
    )
    answered = lead.json()
    assert (answered["attributed"], answered["share_id"], answered["advocate_id"]) == (
        True,
        f"{org}-s1",
        None,
    )
    assert answered["credits"] == []

    async def counted() -> bool:
        return bool((await totals(client, settings, org))["leads"] == 1)

    await eventually(counted, timeout_s=WAIT_S)
    day = {"from": (now - timedelta(days=1)).date().isoformat(), "to": now.date().isoformat()}
    rows = {
        group: {r["key"]: (r["clicks"], r["leads"]) for r in response.json()["rows"]}
        for group in ("advocate", "content")
        for response in [await client.get("/v1/funnel", params={**day, "group_by": group}, headers=crm)]
    }
    assert rows == {"advocate": {bob: (1, 0)}, "content": {f"{org}-k": (2, 1)}}
    mine = await client.get("/v1/me/stats", headers=bearer(settings, org=org, sub=bob, roles=["advocate"]))
    assert (mine.json()["tracking_consent"], mine.json()["clicks"], mine.json()["leads"]) == (False, 1, 0)


async def test_the_outbox_relay_finds_pending_conversions_through_an_index(
    client: httpx.AsyncClient,
) -> None:
    metrics: MetricsModules = client._transport.app.state.service  # type: ignore[attr-defined]
    conversions = metrics.attribution.store.tenants.db[CONVERSIONS_COLLECTION]
    explain = await conversions.find(PENDING_FILTER).sort(OUTBOX_SINCE, 1).limit(PAGE).explain()
    assert uses_an_index(explain), plan_stages(explain)


async def test_goal_progress_and_forecast_follow_known_data(
    client: httpx.AsyncClient, metrics_settings: MetricsSettings, producer: EventProducer
) -> None:
    settings, org = metrics_settings, new_org()
    today = datetime.now(UTC).date()
    start = today - timedelta(days=9)
    # 10 shares over the first 10 days of a 30-day goal, one of them before it starts.
    events = [
        share(
            org,
            f"s{i}",
            f"{org}-a",
            datetime.combine(start + timedelta(days=i), datetime.min.time(), tzinfo=UTC)
            + timedelta(hours=12),
        )
        for i in range(10)
    ]
    events.append(share(org, "early", f"{org}-a", datetime.now(UTC) - timedelta(days=20)))
    await producer.publish_many(events)

    async def shares_visible() -> bool:
        return bool((await totals(client, settings, org))["shares"] == 11)

    await eventually(shares_visible, timeout_s=WAIT_S)
    end = start + timedelta(days=29)

    async def goal(target: float, expect: int = 201, **extra: Any) -> dict[str, Any]:
        body = {
            "name": "shares",
            "metric": "shares",
            "target": target,
            "starts_on": start.isoformat(),
            "ends_on": end.isoformat(),
            **extra,
        }
        response = await client.post("/v1/goals", json=body, headers=admin(settings, org))
        assert response.status_code == expect, response.text
        result: dict[str, Any] = response.json()
        return result

    on_track = await goal(30)
    assert (on_track["value"], on_track["forecast"], on_track["progress"]) == (10, 30, round(10 / 30, 6))
    assert on_track["status"] == "on_track"
    assert (await goal(36))["status"] == "at_risk"  # 30 >= 0.8 x 36
    assert (await goal(40))["status"] == "behind"
    assert (await goal(8))["status"] == "achieved"
    reach = await goal(3000, metric="reach")
    assert (reach["value"], reach["forecast"]) == (1000, 3000)
    filtered = await goal(5, filter_dim="advocate", filter_key="someone-else")
    assert filtered["value"] == 0 and filtered["status"] == "behind"
    horizon = await client.post(
        "/v1/goals",
        json={"name": "h", "metric": "clicks", "target": 10, "horizon_months": 3},
        headers=admin(settings, org),
    )
    assert horizon.json()["starts_on"] == today.isoformat()

    metrics: MetricsModules = client._transport.app.state.service  # type: ignore[attr-defined]
    assert await metrics.goals.snapshot_goals() >= 1
    fetched = await client.get(f"/v1/goals/{on_track['goal_id']}", headers=admin(settings, org))
    assert fetched.json()["history"] == [{"date": today.isoformat(), "value": 10.0, "enrolled": 0}]

    bad = await client.post(
        "/v1/goals",
        headers=admin(settings, org),
        json={
            "name": "x",
            "metric": "shares",
            "target": 1,
            "starts_on": today.isoformat(),
            "ends_on": (today - timedelta(days=1)).isoformat(),
        },
    )
    assert bad.status_code == 422
    for metric in ("enrolled", "nps"):  # the organisation's figures: a filter would be ignored
        refused = await goal(1, 422, metric=metric, filter_dim="team", filter_key="sales")
        assert refused["errors"][0]["field"] == "filter_dim" and metric in refused["detail"]
    page = await client.get("/v1/goals", params={"limit": 2}, headers=admin(settings, org))
    assert len(page.json()["items"]) == 2 and page.json()["next_cursor"]
    # In CSV, one line a goal of the page, without its daily history.
    csv_page = await client.get(
        "/v1/goals", params={"limit": 2}, headers={**admin(settings, org), "Accept": "text/csv"}
    )
    assert csv_page.headers["content-disposition"] == 'attachment; filename="goals.csv"'
    lines = list(csv.DictReader(io.StringIO(csv_page.text)))
    assert [line["goal_id"] for line in lines] == [g["goal_id"] for g in page.json()["items"]]
    assert "history" not in lines[0]
    assert (
        await client.get(f"/v1/goals/{on_track['goal_id']}", headers=admin(settings, new_org()))
    ).status_code == 404


class GoalsDeletedAfterTheRead(GoalStore):
    """The goals store, whose read of every goal (the snapshot job's) returns only after
    `meanwhile` ran: a manager deletes a goal between the job's read and its write."""

    def __init__(self, store: GoalStore, meanwhile: Callable[[], Awaitable[None]]) -> None:
        super().__init__(store.tenants.db)
        self.meanwhile = meanwhile

    async def all_goals(self) -> list[Goal]:
        goals = await super().all_goals()
        await self.meanwhile()
        return goals


async def test_a_deleted_goal_leaves_no_snapshot_not_even_one_the_snapshot_job_was_writing(
    client: httpx.AsyncClient, metrics_settings: MetricsSettings
) -> None:
    settings, org = metrics_settings, new_org()
    headers = admin(settings, org)
    today = datetime.now(UTC).date()
    around_today = {  # running on the organisation's day, whichever side of midnight the job runs
        "starts_on": (today - timedelta(days=10)).isoformat(),
        "ends_on": (today + timedelta(days=10)).isoformat(),
    }
    body = {"name": "g", "metric": "shares", "target": 10, **around_today}
    made = [await client.post("/v1/goals", json=body, headers=headers) for _ in range(3)]
    assert [m.status_code for m in made] == [201, 201, 201], [m.text for m in made]
    snapshotted, raced, kept = (m.json()["goal_id"] for m in made)
    metrics: MetricsModules = client._transport.app.state.service  # type: ignore[attr-defined]
    snapshots = metrics.goals.store.tenants.of(org, GOAL_SNAPSHOTS)
    assert await metrics.goals.snapshot_goals() >= 3
    assert set(await snapshots.distinct("goal_id")) == {snapshotted, raced, kept}

    # Deleted after its snapshots were taken: they go with it.
    assert (await client.delete(f"/v1/goals/{snapshotted}", headers=headers)).status_code == 204

    # Deleted while the job, which had read it, computed its value: the job's write keeps nothing.
    async def delete_raced() -> None:
        assert (await client.delete(f"/v1/goals/{raced}", headers=headers)).status_code == 204

    racing = dataclasses.replace(
        metrics.goals, store=GoalsDeletedAfterTheRead(metrics.goals.store, delete_raced)
    )
    await racing.snapshot_goals()
    assert set(await snapshots.distinct("goal_id")) == {kept}
    assert (await client.get(f"/v1/goals/{kept}", headers=headers)).json()["history"]


async def test_surveys_give_nps_averages_and_comments(
    client: httpx.AsyncClient, metrics_settings: MetricsSettings
) -> None:
    settings, org = metrics_settings, new_org()
    created = await client.post(
        "/v1/surveys",
        headers=admin(settings, org),
        json={
            "kind": "enps",
            "title": "Q4 pulse",
            "questions": [
                {"id": "recommend", "text": "Would you recommend working here?", "type": "nps"},
                {"id": "why", "text": "Why?", "type": "text"},
            ],
        },
    )
    assert created.status_code == 201, created.text
    survey_id = created.json()["survey_id"]
    for sub, score in (("e1", 10), ("e2", 9), ("e3", 3)):
        employee = bearer(settings, org=org, sub=sub, roles=["advocate"])
        response = await client.post(
            f"/v1/surveys/{survey_id}/responses",
            headers=employee,
            json={"answers": {"recommend": score, "why": f"because {sub}"}},
        )
        assert response.status_code == 201, response.text
    again = await client.post(
        f"/v1/surveys/{survey_id}/responses",
        headers=bearer(settings, org=org, sub="e1", roles=["advocate"]),
        json={"answers": {"recommend": 0}},
    )
    assert again.status_code == 409
    out_of_range = await client.post(
        f"/v1/surveys/{survey_id}/responses",
        headers=bearer(settings, org=org, sub="e4", roles=["advocate"]),
        json={"answers": {"recommend": 11}},
    )
    assert out_of_range.status_code == 422
    # Three employees are too few to show scores or comments without saying who answered what.
    results = (await client.get(f"/v1/surveys/{survey_id}/results", headers=admin(settings, org))).json()
    by_id = {q["id"]: q for q in results["questions"]}
    assert (results["responses"], results["withheld"], results["min_responses"]) == (3, True, 5)
    assert (by_id["recommend"]["count"], by_id["recommend"]["nps"], by_id["why"]["comments"]) == (3, None, [])
    for sub, score in (("e4", 10), ("e5", 7)):
        employee = bearer(settings, org=org, sub=sub, roles=["advocate"])
        response = await client.post(
            f"/v1/surveys/{survey_id}/responses",
            headers=employee,
            json={"answers": {"recommend": score, "why": f"because {sub}"}},
        )
        assert response.status_code == 201, response.text
    results = (await client.get(f"/v1/surveys/{survey_id}/results", headers=admin(settings, org))).json()
    by_id = {q["id"]: q for q in results["questions"]}
    assert (results["responses"], results["withheld"]) == (5, False)
    assert by_id["recommend"]["nps"] == 40.0  # 3 promoters, 1 passive, 1 detractor
    assert sorted(by_id["why"]["comments"]) == [f"because e{n}" for n in range(1, 6)]

    customer = await client.post(
        "/v1/surveys",
        headers=admin(settings, org),
        json={
            "kind": "customer",
            "title": "After the demo",
            "questions": [{"id": "rating", "text": "How was it?", "type": "rating"}],
        },
    )
    customer_id = customer.json()["survey_id"]
    key = (await client.post("/v1/api-keys", json={"name": "site"}, headers=admin(settings, org))).json()[
        "api_key"
    ]
    for n, rating in enumerate((4, 5, 3)):
        response = await client.post(
            f"/v1/surveys/{customer_id}/responses",
            headers={"X-API-Key": key},
            json={"answers": {"rating": rating}, "customer_id": f"c{n}"},
        )
        assert response.status_code == 201, response.text
    employee_answer = await client.post(
        f"/v1/surveys/{customer_id}/responses",
        headers=bearer(settings, org=org, sub="e1", roles=["advocate"]),
        json={"answers": {"rating": 1}},
    )
    assert employee_answer.status_code == 403
    customer_results = (
        await client.get(f"/v1/surveys/{customer_id}/results", headers=admin(settings, org))
    ).json()
    assert customer_results["questions"][0]["average"] == 4.0  # customers are not anonymous: shown at 3
    assert (customer_results["withheld"], customer_results["min_responses"]) == (False, None)

    # A survey result can be a goal.
    goal = await client.post(
        "/v1/goals",
        headers=admin(settings, org),
        json={
            "name": "eNPS",
            "metric": "nps",
            "target": 30,
            "horizon_months": 6,
            "survey_id": survey_id,
            "question_id": "recommend",
        },
    )
    assert goal.status_code == 201, goal.text
    assert (goal.json()["value"], goal.json()["status"]) == (40.0, "achieved")
    other = await client.get(f"/v1/surveys/{survey_id}/results", headers=admin(settings, new_org()))
    assert other.status_code == 404


# The creates of goals and surveys: where they are kept, their id's field, a body and another one.
KEYED_CREATES = {
    "goals": (
        GOALS,
        "goal_id",
        {"name": "Shares", "metric": "shares", "target": 10, "horizon_months": 1},
        {"name": "Shares", "metric": "shares", "target": 20, "horizon_months": 1},
    ),
    "surveys": (
        SURVEYS,
        "survey_id",
        {"kind": "pulse", "title": "Pulse", "questions": [{"id": "q", "text": "How?", "type": "rating"}]},
        {"kind": "pulse", "title": "Other", "questions": [{"id": "q", "text": "How?", "type": "rating"}]},
    ),
    # A retry must not register a second endpoint: every event would be delivered twice.
    "webhooks": (
        WEBHOOK_ENDPOINTS,
        "id",
        {"url": "http://127.0.0.1:9/hook", "event_types": ["chorus.share.made"]},
        {"url": "http://127.0.0.1:9/other", "event_types": ["chorus.share.made"]},
    ),
}


async def listed_ids(client: httpx.AsyncClient, kind: str, headers: dict[str, str]) -> list[str]:
    _, id_field, _, _ = KEYED_CREATES[kind]
    return [item[id_field] for item in (await client.get(f"/v1/{kind}", headers=headers)).json()["items"]]


@pytest.mark.parametrize("kind", KEYED_CREATES)
async def test_an_idempotency_key_replays_the_first_create(
    client: httpx.AsyncClient, metrics_settings: MetricsSettings, kind: str
) -> None:
    _, _, body, other_body = KEYED_CREATES[kind]
    headers = admin(metrics_settings, new_org())
    keyed = {**headers, "Idempotency-Key": "create-1"}
    first = await client.post(f"/v1/{kind}", json=body, headers=keyed)
    again = await client.post(f"/v1/{kind}", json=body, headers=keyed)
    assert first.status_code == again.status_code == 201, first.text
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert len(await listed_ids(client, kind, headers)) == 1
    other = await client.post(f"/v1/{kind}", json=other_body, headers=keyed)
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == "Idempotency-Key"


async def test_a_keyed_endpoint_creates_stored_answer_keeps_no_secret(
    client: httpx.AsyncClient, metrics_settings: MetricsSettings
) -> None:
    """The signing secret is sealed at rest; the answer a retry replays must not hold it in clear."""
    org = new_org()
    keyed = {**admin(metrics_settings, org), "Idempotency-Key": "endpoint-1"}
    body = KEYED_CREATES["webhooks"][2]
    first = await client.post("/v1/webhooks", json=body, headers=keyed)
    assert first.status_code == 201, first.text
    secret = first.json()["secret"]
    metrics: MetricsModules = client._transport.app.state.service  # type: ignore[attr-defined]
    db = metrics.goals.store.tenants.db
    stored = [doc async for doc in db[idempotency.COLLECTION].find({"org": org})]
    endpoint = await db[WEBHOOK_ENDPOINTS].find_one({"org": org, "_id": first.json()["id"]})
    assert len(stored) == 1 and stored[0]["state"] == "done", stored
    assert endpoint is not None and secret not in str(endpoint) and secret not in str(stored)

    # Removed since, the endpoint cannot be answered again: a 409 says why, and nothing is registered.
    deleted = await client.delete(f"/v1/webhooks/{first.json()['id']}", headers=keyed)
    assert deleted.status_code == 204, deleted.text
    again = await client.post("/v1/webhooks", json=body, headers=keyed)
    assert again.status_code == 409 and "removed" in again.json()["detail"], again.text
    assert await listed_ids(client, "webhooks", keyed) == []


@pytest.mark.parametrize("kind", KEYED_CREATES)
async def test_a_creates_retry_whose_first_answer_was_lost_finds_what_its_first_try_made(
    client: httpx.AsyncClient, metrics_settings: MetricsSettings, kind: str
) -> None:
    collection, id_field, body, _ = KEYED_CREATES[kind]
    org = new_org()
    headers = admin(metrics_settings, org)
    keyed = {**headers, "Idempotency-Key": "create-1"}
    metrics: MetricsModules = client._transport.app.state.service  # type: ignore[attr-defined]
    db = metrics.goals.store.tenants.db
    first = await client.post(f"/v1/{kind}", json=body, headers=keyed)
    assert first.status_code == 201, first.text
    first_id = first.json()[id_field]

    # The answer lost (MongoDB failed over after the create was written): the retry runs again.
    await db[idempotency.COLLECTION].delete_many({"org": org})
    again = await client.post(f"/v1/{kind}", json=body, headers=keyed)
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert await listed_ids(client, kind, headers) == [first_id]

    # A day on, the key's record has expired, and the client uses the key again: a new one.
    a_day_ago = datetime.now(UTC) - timedelta(hours=25)
    await db[collection].update_one({"org": org, "_id": first_id}, {"$set": {"created_at": a_day_ago}})
    await db[idempotency.COLLECTION].delete_many({"org": org})
    later = await client.post(f"/v1/{kind}", json=body, headers=keyed)
    assert later.status_code == 201, later.text
    assert await listed_ids(client, kind, headers) == [first_id, later.json()[id_field]]


async def test_program_figures_and_erasure(
    client: httpx.AsyncClient, metrics_settings: MetricsSettings, producer: EventProducer
) -> None:
    settings, org = metrics_settings, new_org()
    alice, bob = f"{org}-alice", f"{org}-bob"
    now = datetime.now(UTC)
    await producer.publish_many(
        [
            Event.create(AdvocateEnrolled(advocate_id=alice, team="sales"), tenant=org, source="/test"),
            Event.create(AdvocateEnrolled(advocate_id=bob, team="eng"), tenant=org, source="/test"),
            Event.create(
                CourseCompleted(advocate_id=alice, course_id="basics", title="Basics"),
                tenant=org,
                source="/test",
            ),
            share(org, "s1", alice, now - timedelta(hours=2), audience=300),
            click(org, "c1", "s1", alice, now - timedelta(hours=1), "v1"),
        ]
    )

    async def program() -> dict[str, Any]:
        result: dict[str, Any] = (await client.get("/v1/program", headers=admin(settings, org))).json()
        return result

    async def program_ready() -> bool:
        p = await program()
        return bool(p["enrolled"] == 2 and p["active"] == 1 and p["trained"] == 1)

    await eventually(program_ready, timeout_s=WAIT_S)
    await wait_for_clicks(client, settings, org, 1)
    p = await program()
    assert (p["active_ratio"], p["training_completion"]) == (0.5, 0.5)
    assert [(t["team"], t["enrolled"], t["active"]) for t in p["by_team"]] == [("eng", 1, 0), ("sales", 1, 1)]
    me = await client.get("/v1/me/stats", headers=bearer(settings, org=org, sub=alice, roles=["advocate"]))
    assert (me.json()["reach"], me.json()["clicks"]) == (300, 1)
    lead = {"type": "lead", "click_id": f"{org}-c1", "customer_id": "cust-e"}
    converted = await client.post("/v1/conversions", json=lead, headers=admin(settings, org))
    assert converted.json()["advocate_id"] == alice
    metrics: MetricsModules = client._transport.app.state.service  # type: ignore[attr-defined]

    await producer.publish(
        Event.create(AdvocateErased(advocate_id=alice, requested_by="dpo"), tenant=org, source="/test")
    )

    async def erased() -> bool:
        return bool((await program())["enrolled"] == 1)

    await eventually(erased, timeout_s=WAIT_S)
    today = datetime.now(UTC).date().isoformat()
    by_advocate = await client.get(
        "/v1/funnel",
        headers=admin(settings, org),
        params={"from": today, "to": today, "group_by": "advocate"},
    )
    assert by_advocate.json()["rows"] == []
    t = await totals(client, settings, org)
    assert (t["shares"], t["reach"], t["clicks"]) == (1, 300, 1)  # anonymous aggregates stay
    me = await client.get("/v1/me/stats", headers=bearer(settings, org=org, sub=alice, roles=["advocate"]))
    assert (me.json()["reach"], me.json()["clicks"]) == (0, 0)
    # Attribution forgets her too: her clicks no longer credit anyone.
    assert await metrics.attribution.store.customer_touches(org, "cust-e") == []
    again = await client.post(
        "/v1/conversions",
        headers=admin(settings, org),
        json={
            "type": "sale",
            "click_id": f"{org}-c1",
            "customer_id": "cust-f",
            "amount": "5",
            "currency": "EUR",
            "order_id": "o-1",
        },
    )
    assert (again.json()["attributed"], again.json()["reason"]) == (False, "unknown click id")


async def test_an_erased_advocates_clicks_credit_nobody_and_their_conversions_no_erased_row(
    client: httpx.AsyncClient, metrics_settings: MetricsSettings, producer: EventProducer
) -> None:
    settings, org = metrics_settings, new_org()
    alice, bob = f"{org}-alice", f"{org}-bob"
    now = datetime.now(UTC)
    hours_ago = [now - timedelta(hours=h) for h in range(6)]
    clicks = [
        click(org, "a-job", "s1", alice, hours_ago[4], "cand", content_type="job_opening"),
        click(org, "a-sale", "s1", alice, hours_ago[4], "buyer"),
        click(org, "a-1", "s1", alice, hours_ago[4], "v1"),
        click(org, "b-1", "s2", bob, hours_ago[3], "v1"),
        click(org, "a-2", "s1", alice, hours_ago[4], "v2"),
        click(org, "b-own", "s2", bob, hours_ago[3], "v2", own=True),
    ]
    await producer.publish_many(
        [
            Event.create(AdvocateEnrolled(advocate_id=alice, team="t"), tenant=org, source="/test"),
            share(org, "s1", alice, hours_ago[5]),
            share(org, "s2", bob, hours_ago[5]),
            *clicks,
        ]
    )
    metrics: MetricsModules = client._transport.app.state.service  # type: ignore[attr-defined]

    async def enrolled(count: int) -> bool:
        return len(await metrics.projections.advocates(org)) == count

    async def indexed() -> bool:
        return all([await metrics.projections.click(org, c.data.click_id) for c in clicks])  # type: ignore[attr-defined]

    await eventually(lambda: enrolled(1), timeout_s=WAIT_S)
    await eventually(indexed, timeout_s=WAIT_S)
    crm = admin(settings, org)

    async def post(body: dict[str, Any]) -> dict[str, Any]:
        response = await client.post("/v1/conversions", json=body, headers=crm)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    sale = {"type": "sale", "customer_id": "buyer", "amount": "100", "currency": "EUR", "order_id": "o-1"}
    assert (await post({**sale, "click_id": f"{org}-a-sale"}))["advocate_id"] == alice
    application = {"type": "application", "click_id": f"{org}-a-job", "customer_id": "cand"}
    assert (await post(application))["advocate_id"] == alice

    await producer.publish(
        Event.create(AdvocateErased(advocate_id=alice, requested_by="dpo"), tenant=org, source="/test")
    )
    await eventually(lambda: enrolled(0), timeout_s=WAIT_S)
    # Her clicks keep no visitor, in the click index nor in the sale credited to one; Bob's do.
    hers, his = (
        await metrics.projections.click(org, f"{org}-a-1"),
        await metrics.projections.click(org, f"{org}-b-1"),
    )
    assert hers is not None and (hers.advocate_id, hers.visitor_hash) == ("erased", None)
    assert his is not None and his.visitor_hash == "v1"
    sold = await metrics.attribution.store.recorded(org, f"{org}|sale|buyer|o-1")
    assert sold is not None and sold.click is not None and sold.click.visitor_hash is None

    # The visitor also came through Alice's link: only Bob shares the credit now.
    both = await post({"type": "lead", "click_id": f"{org}-b-1", "customer_id": "l1"})
    assert (both["attributed"], both["advocate_id"]) == (True, bob)
    assert [(c["advocate_id"], c["linear"]) for c in both["credits"]] == [(bob, 1.0)]
    # Bob's own click, whose visitor came otherwise only through Alice's link: nobody's.
    own = await post({"type": "lead", "click_id": f"{org}-b-own", "customer_id": "l2"})
    assert (own["attributed"], own["advocate_id"], own["share_id"], own["credits"]) == (False, None, None, [])
    assert own["reason"] == "the only click is the advocate's own, and a self-click earns no credit"
    # Her application's hire and her sale's refund still count, for the share, for nobody.
    refund = {"type": "refund", "customer_id": "buyer", "order_id": "o-1", "amount": "30", "currency": "EUR"}
    async with TopicReader(settings, CONVERSIONS.name) as reader:
        hire = await post({"type": "hire", "customer_id": "cand"})
        assert (hire["attributed"], hire["advocate_id"], hire["share_id"]) == (True, None, f"{org}-s1")
        assert (await post(refund))["advocate_id"] is None
        sent = await reader.collect(
            lambda e: e.tenant == org and isinstance(e.data, HireMade | SaleRefunded), 2
        )
    # Their events name no advocate, not even in their credits: the vault holds no "erased" person.
    assert sorted(
        (type(e.data).__name__, e.data.advocate_id, e.data.credits)
        for e, _ in sent
        if isinstance(e.data, HireMade | SaleRefunded)
    ) == [("HireMade", None, []), ("SaleRefunded", None, [])]
    mongo = create_client(settings)
    try:
        people = mongo[settings.vault_database_name()]["people"]
        assert await people.find_one({"org": org, "sub": bob}) is not None  # the vault of this organisation
        assert await people.find_one({"org": org, "sub": "erased"}) is None
    finally:
        await mongo.close()

    async def counted() -> bool:
        t = await totals(client, settings, org)
        return bool((t["leads"], t["hires"], t["refunds"], t["revenue"]) == (2, 1, 1, {"EUR": "70.00"}))

    await eventually(counted, timeout_s=WAIT_S)
    by_advocate = await client.get(
        "/v1/funnel",
        params={
            "from": (now - timedelta(days=1)).date().isoformat(),
            "to": now.date().isoformat(),
            "group_by": "advocate",
        },
        headers=crm,
    )
    assert [(r["key"], r["leads"]) for r in by_advocate.json()["rows"]] == [(bob, 1)]


async def test_dictionary_and_settings(client: httpx.AsyncClient, metrics_settings: MetricsSettings) -> None:
    settings, org = metrics_settings, new_org()
    names = {
        m["name"]
        for m in (await client.get("/v1/metrics/dictionary", headers=admin(settings, org))).json()["items"]
    }
    assert {"ctr", "conversion_rate", "emv", "unique_clicks", "bot_clicks", "self_clicks"} <= names
    # Every funnel metric is defined (revenue is the funnel's per-currency column).
    assert set(FUNNEL_METRICS) <= names and "revenue" in names
    bad = await client.put(
        "/v1/metrics/settings",
        headers=admin(settings, org),
        json={"cpc": "-1", "cpm": "2", "currency": "EUR"},
    )
    assert bad.status_code == 422
    editor = bearer(settings, org=org, sub="ed", roles=["editor"])
    refused = await client.put(
        "/v1/metrics/settings", headers=editor, json={"cpc": "1", "cpm": "2", "currency": "EUR"}
    )
    assert refused.status_code == 403
    current = (await client.get("/v1/metrics/settings", headers=editor)).json()
    assert current["attribution_window_days"] == 30 and current["cpc"] == "0"


async def test_a_key_does_only_what_its_scopes_allow_and_nothing_once_expired(
    client: httpx.AsyncClient, metrics_settings: MetricsSettings
) -> None:
    org = new_org()
    admin = bearer(metrics_settings, org=org, sub="root", roles=["admin"])
    lead = {"type": "lead", "customer_id": "c1"}

    async def key(**body: object) -> str:
        created = await client.post("/v1/api-keys", json={"name": "k", **body}, headers=admin)
        assert created.status_code == 201, created.text
        return str(created.json()["api_key"])

    surveys_only = await key(scopes=["surveys:respond"])
    refused = await client.post("/v1/conversions", json=lead, headers={"X-API-Key": surveys_only})
    assert refused.status_code == 403 and "conversions:write" in refused.json()["detail"]

    crm = await key(scopes=["conversions:write"])
    assert (await client.post("/v1/conversions", json=lead, headers={"X-API-Key": crm})).status_code == 200
    listed = (await client.get("/v1/api-keys", headers=admin)).json()["items"]
    assert sorted(tuple(k["scopes"]) for k in listed) == [("conversions:write",), ("surveys:respond",)]

    soon = datetime.now(UTC) + timedelta(seconds=2)
    brief = await key(expires_at=soon.isoformat())
    assert (await client.post("/v1/conversions", json=lead, headers={"X-API-Key": brief})).status_code == 200
    await asyncio.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.5)
    expired = await client.post("/v1/conversions", json=lead, headers={"X-API-Key": brief})
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]

    past = await client.post(
        "/v1/api-keys", json={"name": "k", "expires_at": "2020-01-01T00:00:00Z"}, headers=admin
    )
    assert past.status_code == 422 and past.json()["errors"][0]["field"] == "expires_at"
    unknown_scope = await client.post(
        "/v1/api-keys", json={"name": "k", "scopes": ["everything"]}, headers=admin
    )
    assert unknown_scope.status_code == 422


async def test_an_event_naming_someone_the_vault_no_longer_has_counts_for_nobody(
    client: httpx.AsyncClient, metrics_settings: MetricsSettings, producer: EventProducer
) -> None:
    # A consumer lagging past the erasure grace, or a rebuild, reads an erased person's events
    # with a pseudonym linked to nobody (docs/erasure.md): their share still counts for the
    # organisation, in no advocate's row.
    settings, org = metrics_settings, new_org()
    now = datetime.now(UTC)
    [late] = await producer.vault.seal([share(org, "s1", "gone", now - timedelta(hours=1), audience=300)])
    assert is_pseudonym(late.data.advocate_id)
    await producer.vault.shred_after(org, "gone", now)
    await producer.send_raw(SHARES.name, late.to_json_bytes(), b"s1", event_headers(late))
    await producer.publish(share(org, "s1", "stays", now - timedelta(minutes=30), audience=100))

    async def both_counted() -> bool:
        return bool((await totals(client, settings, org))["shares"] == 2)

    await eventually(both_counted, timeout_s=WAIT_S)
    # From yesterday: run just after midnight (UTC), the shares fall on the day before.
    by_advocate = await client.get(
        "/v1/funnel",
        headers=admin(settings, org),
        params={
            "from": (now - timedelta(days=1)).date().isoformat(),
            "to": now.date().isoformat(),
            "group_by": "advocate",
        },
    )
    assert [(r["key"], r["shares"], r["reach"]) for r in by_advocate.json()["rows"]] == [("stays", 1, 100)]
    assert (await totals(client, settings, org))["reach"] == 400


async def test_erasing_a_staff_member_leaves_what_they_made_naming_nobody(
    client: httpx.AsyncClient, metrics_settings: MetricsSettings, producer: EventProducer
) -> None:
    """A staff member is also an advocate (one `sub`); what they made as staff stays, naming
    nobody, in their organisation only."""
    settings, org, other_org = metrics_settings, new_org(), new_org()
    staff = f"{org}-staff"
    start = datetime.now(UTC).date()
    goal = {"name": "g", "metric": "shares", "target": 10, "starts_on": start.isoformat()}
    goal["ends_on"] = (start + timedelta(days=30)).isoformat()

    async def hook(request: Request) -> Response:
        return Response(status_code=204)

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    made: dict[str, dict[str, str]] = {}  # org -> collection -> id
    async with http_server(receiver) as base_url:
        for each in (org, other_org):
            headers = bearer(settings, org=each, sub=staff, roles=["admin", "advocate"])
            keyed = {**headers, "Idempotency-Key": f"{staff}-goal"}
            goal_id = (await client.post("/v1/goals", json=goal, headers=keyed)).json()["goal_id"]
            key = await client.post("/v1/api-keys", json={"name": "crm"}, headers=headers)
            endpoint = await client.post(
                "/v1/webhooks",
                json={"url": f"{base_url}/hook", "event_types": ["chorus.share.made"]},
                headers=headers,
            )
            endpoint_id = endpoint.json()["id"]
            now = datetime.now(UTC)
            replay = await client.post(
                f"/v1/webhooks/{endpoint_id}/replays",
                json={"from": (now - timedelta(minutes=1)).isoformat(), "to": now.isoformat()},
                headers=headers,
            )
            assert replay.status_code == 202, replay.text
            on_staff = {**goal, "filter_dim": "advocate", "filter_key": staff}
            measured = await client.post("/v1/goals", json=on_staff, headers=admin(settings, each))
            assert measured.status_code == 201, measured.text
            made[each] = {
                GOALS: goal_id,
                "measured": measured.json()["goal_id"],
                API_KEYS: key.json()["key_id"],
                WEBHOOK_ENDPOINTS: endpoint_id,
                WEBHOOK_REPLAYS: replay.json()["id"],
            }
        await producer.publish(
            Event.create(AdvocateErased(advocate_id=staff, requested_by="dpo"), tenant=org, source="/test")
        )

        mongo = create_client(settings)
        db = mongo[settings.database_name("metrics")]
        person_field = {
            GOALS: "created_by",
            "measured": "filter_key",  # a goal on the staff member's own figures as an advocate
            API_KEYS: "created_by",
            WEBHOOK_ENDPOINTS: "created_by",
            WEBHOOK_REPLAYS: "requested_by",
        }

        async def stored(each: str) -> dict[str, Any]:
            found: dict[str, Any] = {}
            for collection, doc_id in made[each].items():
                doc = await db[GOALS if collection == "measured" else collection].find_one(
                    {"_id": doc_id, "org": each}
                )
                assert doc is not None, (collection, doc_id)
                found[collection] = doc[person_field[collection]]
                if collection == GOALS:
                    found["request_key"] = doc["request_key"]
            return found

        async def erased() -> bool:
            return await stored(org) == dict.fromkeys(person_field, "erased") | {"request_key": None}

        try:
            await eventually(erased, timeout_s=WAIT_S)
            # The same person's things in another organisation are that organisation's business.
            assert await stored(other_org) == dict.fromkeys(person_field, staff) | {
                "request_key": f"{staff}-goal"
            }
        finally:
            await mongo.close()
