"""The library's audience checks read the profile sharing announces (chorus.advocates), which the
organisation's directory sets, not what a token claims (issue 16)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.content.program.store import SETTINGS
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


async def test_authors_are_named_only_when_they_let_colleagues_see_their_name(
    client: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    users = Users(settings, new_org())
    picture = "https://img.example.com/ann.png"
    submitted = {}
    for author in ("ann", "bob"):
        created = await client.post("/v1/content", headers=users.headers(author, "advocate"), json=article())
        assert created.status_code == 201, created.text
        submitted[author] = created.json()["id"]
    producer = EventProducer(settings)
    await producer.start()
    try:
        for data in (
            # As sharing announces them: Ann lets colleagues see her name, Bob does not.
            AdvocateUpdated(advocate_id="ann", display_name="Ann Lee", avatar_url=picture),
            AdvocateUpdated(advocate_id="bob"),
        ):
            await producer.publish(Event.create(data, tenant=users.org, source="/tests"))

        async def authors() -> dict[str, tuple[str | None, str | None, str | None]]:
            listed = await client.get(
                "/v1/content", headers=users.editor, params={"status": "pending_review"}
            )
            return {
                i["id"]: (i["author_advocate_id"], i["author_display_name"], i["author_avatar_url"])
                for i in listed.json()["items"]
            }

        expected = {submitted["ann"]: ("ann", "Ann Lee", picture), submitted["bob"]: ("bob", None, None)}
        await eventually(lambda: _equal(authors(), expected))
        one = (await client.get(f"/v1/content/{submitted['ann']}", headers=users.editor)).json()
        assert (one["author_display_name"], one["author_avatar_url"]) == ("Ann Lee", picture)
        # Erased: her name leaves the library with the rest of her profile.
        await producer.publish(
            Event.create(
                AdvocateErased(advocate_id="ann", requested_by="ann"), tenant=users.org, source="/tests"
            )
        )

        async def unnamed() -> bool:
            item = (await client.get(f"/v1/content/{submitted['ann']}", headers=users.editor)).json()
            return item.get("author_display_name") is None and item.get("author_avatar_url") is None

        await eventually(unnamed)
    finally:
        await producer.stop()


async def test_every_write_names_the_author_as_get_does(
    client: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    users = Users(settings, new_org())
    ann = users.headers("ann", "advocate")
    picture = "https://img.example.com/ann.png"
    first = (await client.post("/v1/content", headers=ann, json=article())).json()
    producer = EventProducer(settings)
    await producer.start()
    try:
        named = AdvocateUpdated(advocate_id="ann", display_name="Ann Lee", avatar_url=picture)
        await producer.publish(Event.create(named, tenant=users.org, source="/tests"))
    finally:
        await producer.stop()

    async def named_by_get() -> bool:
        got = (await client.get(f"/v1/content/{first['id']}", headers=users.editor)).json()
        return got["author_display_name"] == "Ann Lee"

    await eventually(named_by_get)
    second = await client.post("/v1/content", headers=ann, json=article(title="Another"))
    answers = [
        second,
        await client.patch(f"/v1/content/{first['id']}", headers=ann, json={"title": "Edited"}),
        await client.post(f"/v1/content/{first['id']}/reject", headers=users.editor, json={"reason": "No"}),
        await client.post(f"/v1/content/{second.json()['id']}/publish", headers=users.editor),
        await client.post(f"/v1/content/{second.json()['id']}/archive", headers=users.editor),
    ]
    for answer in answers:
        assert answer.status_code in (200, 201), answer.text
        body = answer.json()
        assert (body["author_display_name"], body["author_avatar_url"]) == ("Ann Lee", picture), body


async def _equal(found: Any, expected: Any) -> bool:
    return bool(await found == expected)


async def test_the_organisations_default_for_names_is_a_program_setting(
    client: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    users = Users(settings, new_org())
    assert (await client.get("/v1/settings", headers=users.editor)).json()[
        "names_visible_by_default"
    ] is False
    saved = await client.put("/v1/settings", headers=users.admin, json={"names_visible_by_default": True})
    assert saved.status_code == 200, saved.text
    assert (await client.get("/v1/settings", headers=users.editor)).json()["names_visible_by_default"] is True
    bad = await client.put(
        "/v1/settings", headers=users.admin, json={"names_visible_by_default": "sometimes"}
    )
    assert bad.status_code == 422 and "names_visible_by_default" in bad.text


async def test_settings_stored_before_text_refused_control_characters_still_answer(
    client: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    """Requests refuse control characters since 1ba4826; settings stored before must still read
    (shared/fields.py AS_STORED), or every advocate's GET /v1/settings would fail."""
    users = Users(settings, new_org())
    saved = await client.put("/v1/settings", headers=users.admin, json={"required_disclosure": "#ad"})
    assert saved.status_code == 200, saved.text
    db = client._transport.app.state.runtime.db  # type: ignore[attr-defined]
    await db[SETTINGS].update_one({"org": users.org}, {"$set": {"required_disclosure": "#ad\u0007"}})

    answer = await client.get("/v1/settings", headers=users.editor)
    assert answer.status_code == 200, answer.text
    assert answer.json()["required_disclosure"] == "#ad\u0007"
    refused = await client.put("/v1/settings", headers=users.admin, json={"required_disclosure": "#ad\u0007"})
    assert refused.status_code == 422 and "required_disclosure" in refused.text
