"""Content counts how often advocates shared each item, from chorus.share.made, exactly once."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from shared.events import Event
from shared.events.shares import ShareMade
from shared.messaging import EventProducer
from shared.settings import ChorusSettings
from tests.helpers import eventually, new_org
from tests.integration.content.conftest import Users, article

pytestmark = pytest.mark.integration


def share_of(org: str, content_id: str, share_id: str) -> Event[ShareMade]:
    return Event.create(
        ShareMade(
            share_id=share_id,
            advocate_id="ann",
            content_id=content_id,
            network="linkedin",
            code=share_id,
            short_url=f"http://x/r/{share_id}",
            target_url="https://example.com/",
            shared_at=datetime.now(UTC),
        ),
        tenant=org,
        source="/tests",
    )


async def test_each_share_counts_once_even_when_its_event_is_redelivered(
    client: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    users = Users(settings, new_org())
    created = await client.post("/v1/content", headers=users.editor, json=article())
    content_id = created.json()["id"]
    assert created.json()["share_count"] == 0
    assert (await client.post(f"/v1/content/{content_id}/publish", headers=users.editor)).status_code == 200

    first, second = share_of(users.org, content_id, "s1"), share_of(users.org, content_id, "s2")
    elsewhere = share_of(new_org(), content_id, "s3")  # same id, another organisation: not ours
    producer = EventProducer(settings)
    await producer.start()
    try:
        await producer.publish_many([first, first, second, elsewhere, second])
    finally:
        await producer.stop()

    async def count() -> int:
        return int(
            (await client.get(f"/v1/content/{content_id}", headers=users.editor)).json()["share_count"]
        )

    await eventually(lambda: _at_least(count(), 2))
    assert await count() == 2
    # An edit after the shares keeps the count (edits never write it).
    patched = await client.patch(f"/v1/content/{content_id}", headers=users.editor, json={"title": "Renamed"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["share_count"] == 2


async def _at_least(value: object, expected: int) -> bool:
    return bool(await value >= expected)  # type: ignore[misc, operator]
