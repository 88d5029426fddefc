"""Colleagues by name (issue 16): leaderboards, kudos and badge awards carry the name and
picture of those who let colleagues see them (sharing announces a name only for them), and ids
only for the others; kudos go only to enrolled, active colleagues."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shared.events.advocates import AdvocateErased, AdvocateUpdated
from shared.messaging import EventProducer
from shared.settings import ChorusSettings
from tests.helpers import eventually, new_org
from tests.integration.recognition.conftest import body, kudos_once_enrolled, publisher
from tests.integration.recognition.test_rewards import as_

pytestmark = pytest.mark.integration

ANN_PICTURE = "https://img.example.com/ann.png"


async def board(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = body(
        await client.get("/v1/leaderboard", headers=headers, params={"period": "all"})
    )
    return result


async def test_names_on_leaderboards_kudos_and_awards_only_for_those_who_allow_it(
    client: httpx.AsyncClient, producer: EventProducer, settings: ChorusSettings
) -> None:
    org = new_org()
    pub = publisher(producer, org)
    await pub.enrol("ann", "red", display_name="Ann Lee", avatar_url=ANN_PICTURE)
    await pub.enrol("bob", "red")  # keeps his name to himself: announced without it
    ann, bob = as_(settings, org, "ann"), as_(settings, org, "bob")
    admin = as_(settings, org, "boss", "admin")
    badge = {
        "badge_id": "thanked",
        "name": "Thanked",
        "description": "A colleague said thanks",
        "criteria": "One kudos",
        "image_url": "https://example.com/thanked.png",
        "metric": "kudos_received",
        "threshold": 1,
    }
    body(await client.post("/v1/badges", headers=admin, json=badge))

    to_bob = await kudos_once_enrolled(client, "", ann, "bob", "thanks Bob")
    assert (to_bob["from_display_name"], to_bob["from_avatar_url"]) == ("Ann Lee", ANN_PICTURE)
    assert (to_bob["to"], to_bob["to_display_name"], to_bob["to_avatar_url"]) == ("bob", None, None)
    await kudos_once_enrolled(client, "", bob, "ann", "thanks Ann")

    [received] = body(await client.get("/v1/me/kudos", headers=bob))["items"]
    assert (received["from_advocate_id"], received["from_display_name"]) == ("ann", "Ann Lee")
    [sent] = body(await client.get("/v1/me/kudos/sent", headers=bob))["items"]
    assert (sent["to"], sent["to_display_name"], sent["to_avatar_url"]) == ("ann", "Ann Lee", ANN_PICTURE)
    [received] = body(await client.get("/v1/me/kudos", headers=ann))["items"]
    assert (received["from_advocate_id"], received["from_display_name"]) == ("bob", None)

    rows = (await board(client, bob))["items"]
    assert sorted((r["advocate_id"], r["display_name"], r["avatar_url"]) for r in rows) == [
        ("ann", "Ann Lee", ANN_PICTURE),
        ("bob", None, None),
    ]
    me = (await board(client, ann))["me"]
    assert (me["advocate_id"], me["display_name"]) == ("ann", "Ann Lee")

    async def awarded(headers: dict[str, str]) -> list[Any]:
        return list(body(await client.get("/v1/me/badges", headers=headers))["items"])

    [ann_award] = await eventually(lambda: awarded(ann), timeout_s=60)
    [bob_award] = await eventually(lambda: awarded(bob), timeout_s=60)
    assert (ann_award["display_name"], ann_award["avatar_url"]) == ("Ann Lee", ANN_PICTURE)
    assert (bob_award["display_name"], bob_award["avatar_url"]) == (None, None)

    # Ann withdraws (sharing announces her without her name), Bob allows it: the names follow.
    await pub.send(AdvocateUpdated(advocate_id="ann", team="red"))
    await pub.send(AdvocateUpdated(advocate_id="bob", team="red", display_name="Bob Stone"))

    async def names_follow() -> bool:
        rows = (await board(client, ann))["items"]
        return sorted((r["advocate_id"], r["display_name"]) for r in rows) == [
            ("ann", None),
            ("bob", "Bob Stone"),
        ]

    await eventually(names_follow, timeout_s=60)
    [received] = body(await client.get("/v1/me/kudos", headers=ann))["items"]
    assert (received["from_advocate_id"], received["from_display_name"]) == ("bob", "Bob Stone")

    # An erased advocate's name leaves with the rest of their data.
    await pub.send(AdvocateErased(advocate_id="bob", requested_by="dpo"))

    async def gone() -> bool:
        return [r["advocate_id"] for r in (await board(client, ann))["items"]] == ["ann"]

    await eventually(gone, timeout_s=90)
    [received] = body(await client.get("/v1/me/kudos", headers=ann))["items"]
    assert (received["from_advocate_id"], received["from_display_name"]) == (None, None)


async def test_kudos_to_someone_recognition_does_not_know_are_refused_naming_to(
    client: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    org = new_org()
    giver = as_(settings, org, "peer")
    response = await client.post("/v1/kudos", headers=giver, json={"to": "nobody-here", "message": "hi"})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "to" in [e["field"] for e in response.json()["errors"]]
    assert body(await client.get("/v1/me/kudos/sent", headers=giver))["items"] == []


async def test_one_organisations_names_are_not_shown_to_another(
    client: httpx.AsyncClient, producer: EventProducer, settings: ChorusSettings
) -> None:
    org, other = new_org(), new_org()
    await publisher(producer, org).enrol("ann", "red", display_name="Ann Lee")
    await publisher(producer, other).enrol("peer", "red")
    # The same id in another organisation is nobody there: kudos refused, no name leaks.
    await kudos_once_enrolled(client, "", as_(settings, org, "peer2"), "ann", "thanks")
    response = await client.post(
        "/v1/kudos", headers=as_(settings, other, "peer"), json={"to": "ann", "message": "x"}
    )
    assert response.status_code == 422 and "Ann Lee" not in response.text
