"""Fixtures for sharing's integration tests: one running app per module, a movable clock."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from services.sharing.main import create_app
from services.sharing.settings import SharingSettings
from shared.events import Event, EventData
from shared.events.content import Audience, ContentPublished, SettingsUpdated
from shared.messaging import EventProducer, skip_history
from shared.settings import ChorusSettings
from tests.helpers import bearer, eventually, running_app

PUBLIC_BASE_URL = "https://go.chorus.test"
# The topics the sharing app consumes.
SHARING_INPUTS = ["chorus.content", "chorus.training", "chorus.advocates"]


class MovableClock:
    """The redirect's clock: real time plus an offset a test can move forward."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset_s


@dataclass
class Sharing:
    client: httpx.AsyncClient
    settings: SharingSettings
    producer: EventProducer
    clock: MovableClock
    app: Any

    def headers(self, org: str, sub: str, roles: list[str] | None = None) -> dict[str, str]:
        return bearer(self.settings, org=org, sub=sub, roles=roles or ["advocate"])

    async def publish(self, org: str, *datas: EventData) -> None:
        for data in datas:
            await self.producer.publish(Event.create(data, tenant=org, source="/tests"))

    async def publish_content(self, org: str, content_id: str | None = None, **fields: Any) -> str:
        content_id = content_id or f"c-{uuid.uuid4().hex[:8]}"
        data = {
            "content_id": content_id,
            "content_type": "article",
            "title": "Our new product",
            "url": "https://www.example.com/blog/new-product?ref=site#top",
            "tags": ["launch"],
            "audience": Audience(),
            "published_by": "editor-1",
            **fields,
        }
        await self.publish(org, ContentPublished(**data))
        return content_id

    async def wait_shareable(self, org: str, sub: str, content_id: str, present: bool = True) -> None:
        async def check() -> bool:
            response = await self.client.get("/v1/shareable", headers=self.headers(org, sub))
            ids = [item["content_id"] for item in response.json()["items"]]
            return (content_id in ids) == present

        await eventually(check)

    async def set_settings(self, org: str, **fields: Any) -> None:
        await self.publish(org, SettingsUpdated(org_id=org, **fields))
        app_settings = self.app.state.runtime.db["org_settings"]

        async def applied() -> bool:
            doc = await app_settings.find_one({"_id": org, "org": org})
            return doc is not None and all(doc.get(k) == v for k, v in fields.items())

        await eventually(applied)

    async def enrol(self, org: str, sub: str, **fields: Any) -> dict[str, Any]:
        body = {
            "display_name": f"Ada {sub}",
            "team": "sales",
            "department": "revenue",
            "location": "paris",
            "language": "en",
            "networks": [{"network": "linkedin", "handle": f"ada-{sub}", "audience_size": 500}],
            **fields,
        }
        response = await self.client.put("/v1/advocates/me", json=body, headers=self.headers(org, sub))
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


def sharing_settings(settings: ChorusSettings, spool: Path, **overrides: Any) -> SharingSettings:
    return SharingSettings(
        **{
            **settings.model_dump(),
            "public_base_url": PUBLIC_BASE_URL,
            "click_spool_path": str(spool),
            "redirect_state_refresh_s": 0.2,
            "scheduled_share_interval_s": 0.3,
            **overrides,
        }
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sharing(
    settings: ChorusSettings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Sharing]:
    app_settings = sharing_settings(settings, tmp_path_factory.mktemp("spool") / "clicks.sqlite3")
    clock = MovableClock()
    app = create_app(app_settings, clock=clock)
    group = f"{settings.consumer_group_prefix}.sharing"
    await skip_history(
        settings.kafka_bootstrap, group, ["chorus.content", "chorus.training", "chorus.advocates"]
    )
    producer = EventProducer(settings, client_id="sharing-tests")
    await producer.start()
    try:
        async with running_app(app) as client:
            yield Sharing(client, app_settings, producer, clock, app)
    finally:
        await producer.stop()


def in_hours(hours: float) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)
