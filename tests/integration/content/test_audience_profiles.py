"""The library's audience checks read the profile sharing announces (chorus.advocates), which the
organisation's directory sets, not what a token claims (issue 16)."""

from __future__ import annotations

import httpx
import pytest

from shared.events import Event, EventData
from shared.events.advocates import AdvocateErased, AdvocateUpdated
from shared.messaging import EventProducer
from shared.settings import ChorusSettings
from tests.helpers import eventually, new_org
from tests.integration.content.conftest import Users, article

pytestmark = pytest.mark.integration


async def test_the_library_follows_the_directory_not_the_token(
    client: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    users = Users(settings, new_org())
    ids = {}
    for team in ("sales", "support"):
        created = await client.post(
            "/v1/content", headers=users.editor, json=article(audience={"teams": [team]})
        )
        ids[team] = created.json()["id"]
        assert (
            await client.post(f"/v1/content/{ids[team]}/publish", headers=users.editor)
        ).status_code == 200
    # Her token still says sales; the directory moved her to support.
    ann = users.headers("ann", "advocate", team="sales")

    async def sees() -> set[str]:
        listed = (await client.get("/v1/content", headers=ann)).json()["items"]
        return {i["id"] for i in listed} & set(ids.values())

    async def sees_only(team: str) -> bool:
        return await sees() == {ids[team]}

    assert await sees_only("sales")  # no profile yet: the token's claim stands in
    producer = EventProducer(settings)
    await producer.start()
    try:

        async def publish(data: EventData) -> None:
            await producer.publish(Event.create(data, tenant=users.org, source="/tests"))

        await publish(AdvocateUpdated(advocate_id="ann", team="support", department="care"))
        await eventually(lambda: sees_only("support"))
        assert (await client.get(f"/v1/content/{ids['sales']}", headers=ann)).status_code == 404
        assert (await client.get(f"/v1/content/{ids['support']}", headers=ann)).status_code == 200
        # Erased: the profile goes with the rest; the token speaks for her again.
        await publish(AdvocateErased(advocate_id="ann", requested_by="ann"))
        await eventually(lambda: sees_only("sales"))
    finally:
        await producer.stop()
