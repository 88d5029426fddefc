"""A lead sent the moment the visitor lands is credited to the click that brought them, though
the broker is slow and the click reaches metrics only seconds later (issue 15): the conversion
waits for its click (CHORUS_CONVERSION_CLICK_WAIT_S), here with the real broker frozen."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import pytest_asyncio

from devtools import local_stack
from services.metrics.handlers import ATTRIBUTION_GROUP, WEBHOOKS_GROUP
from services.metrics.handlers import GROUP as METRICS_GROUP
from services.metrics.main import create_app as metrics_app
from services.metrics.settings import MetricsSettings
from services.sharing.main import create_app as sharing_app
from shared.events import TOPICS, Event
from shared.events.clicks import CLICK_ID_PARAM
from shared.events.content import Audience, ContentPublished
from shared.messaging import EventProducer, skip_history
from shared.settings import ChorusSettings
from tests.helpers import BROWSER_UA, bearer, eventually, new_org, running_app
from tests.integration.outages.conftest import frozen
from tests.integration.sharing.conftest import sharing_settings

pytestmark = pytest.mark.integration

# How long the broker stays frozen after the click: the lead is sent meanwhile.
SLOW_BROKER_S = 2.0


@dataclass
class Apps:
    settings: ChorusSettings
    sharing: httpx.AsyncClient
    metrics: httpx.AsyncClient
    producer: EventProducer


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def apps(settings: ChorusSettings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Apps]:
    prefix = f"{settings.consumer_group_prefix}-early-{uuid.uuid4().hex[:6]}"
    for group in ("sharing", METRICS_GROUP, ATTRIBUTION_GROUP, WEBHOOKS_GROUP):
        await skip_history(settings.kafka_bootstrap, f"{prefix}.{group}", [t.name for t in TOPICS])
    base = settings.model_copy(update={"consumer_group_prefix": prefix, "outbox_relay_interval_s": 0.2})
    spool: Path = tmp_path_factory.mktemp("early") / "clicks.sqlite3"
    # Long enough for the click to come through once the broker is back, on a busy machine.
    metrics = MetricsSettings(
        **{**base.model_dump(), "mongo_request_timeout_s": 20.0, "conversion_click_wait_s": 15.0}
    )
    producer = EventProducer(settings, client_id="early-conversion-tests")
    await producer.start()
    try:
        async with (
            running_app(sharing_app(sharing_settings(base, spool))) as sharing,
            running_app(metrics_app(metrics)) as metrics_client,
        ):
            yield Apps(base, sharing, metrics_client, producer)
    finally:
        await producer.stop()


async def test_a_lead_sent_right_after_its_redirect_waits_for_its_click(
    apps: Apps, stack: local_stack.StackConfig
) -> None:
    org = new_org()
    advocate = bearer(apps.settings, org=org, sub="ann", roles=["advocate"])
    content = ContentPublished(
        content_id="c1",
        content_type="article",
        title="Our new product",
        url="https://www.example.com/new",
        audience=Audience(),
        published_by="editor-1",
    )
    await apps.producer.publish(Event.create(content, tenant=org, source="/tests"))
    profile = {
        "display_name": "Ann",
        "networks": [{"network": "linkedin", "handle": "ann", "audience_size": 10}],
    }
    assert (await apps.sharing.put("/v1/advocates/me", json=profile, headers=advocate)).status_code == 200

    async def shareable() -> bool:
        page = await apps.sharing.get("/v1/shareable", headers=advocate)
        return "c1" in {item["content_id"] for item in page.json()["items"]}

    await eventually(shareable, timeout_s=60)
    shared = await apps.sharing.post(
        "/v1/shares", json={"content_id": "c1", "network": "linkedin", "message": "Look"}, headers=advocate
    )
    assert shared.status_code == 201, shared.text

    crm = bearer(apps.settings, org=org, sub="crm", roles=["admin"])
    with frozen(stack, "kafka"):
        visit = await apps.sharing.get(f"/r/{shared.json()['code']}", headers={"User-Agent": BROWSER_UA})
        assert visit.status_code == 302  # the click waits in the redirect's spool
        click_id = parse_qs(urlsplit(visit.headers["location"]).query)[CLICK_ID_PARAM][0]
        lead = asyncio.create_task(
            apps.metrics.post(
                "/v1/conversions",
                json={"type": "lead", "click_id": click_id, "customer_id": "signed-up-at-once"},
                headers=crm,
                timeout=30,
            )
        )
        await asyncio.sleep(SLOW_BROKER_S)
        assert not lead.done(), "the lead was answered before its click could reach metrics"

    answered = (await lead).json()
    assert (answered["attributed"], answered["reason"]) == (True, None), answered
    assert (answered["advocate_id"], answered["share_id"]) == ("ann", shared.json()["id"])

    # An id the redirect could not have made is not waited for.
    unknown = await apps.metrics.post(
        "/v1/conversions", json={"type": "lead", "click_id": "typo!", "customer_id": "c2"}, headers=crm
    )
    assert (unknown.json()["attributed"], unknown.json()["reason"]) == (False, "unknown click id")
