"""Recognition's requests that must be refused with a 422 naming the field, never taken in to
fail later (a 500, or every event of the organisation scored into the dead-letter topic)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from shared.messaging import EventProducer
from shared.pagination import encode_keys, encode_time_id
from shared.settings import ChorusSettings
from tests.helpers import bearer, eventually, new_org
from tests.integration.recognition.conftest import body, publisher

pytestmark = pytest.mark.integration


def _fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return [e["field"] for e in response.json()["errors"]]


def _campaign(starts_at: str, ends_at: str) -> dict[str, Any]:
    return {
        "id": "spring",
        "name": "Spring push",
        "starts_at": starts_at,
        "ends_at": ends_at,
        "multiplier": 2,
    }


async def test_a_campaign_time_without_a_time_zone_is_refused_and_nothing_is_published(
    client: httpx.AsyncClient, producer: EventProducer, settings: ChorusSettings
) -> None:
    """Campaign times are compared with the events' aware times: a naive one would make every
    scored event of the organisation fail (and PUT itself fail where only one of two was naive)."""
    org = new_org()
    admin = bearer(settings, org=org, sub="boss", roles=["admin"])
    rules = body(await client.get("/v1/rules", headers=admin))["rules"]
    now = datetime.now(UTC)
    naive_start, naive_end = (
        (now - timedelta(days=1)).replace(tzinfo=None),
        (now + timedelta(days=1)).replace(tzinfo=None),
    )
    cases = {
        ("rules.campaigns[0].starts_at", "rules.campaigns[0].ends_at"): _campaign(
            naive_start.isoformat(), naive_end.isoformat()
        ),
        ("rules.campaigns[0].ends_at",): _campaign(
            (now - timedelta(days=1)).isoformat(), naive_end.isoformat()
        ),
        ("rules.campaigns[0].starts_at",): _campaign(
            naive_start.isoformat(), (now + timedelta(days=1)).isoformat()
        ),
    }
    for fields, campaign in cases.items():
        refused = await client.put(
            "/v1/rules", headers=admin, json={"rules": {**rules, "campaigns": [campaign]}}
        )
        assert tuple(_fields(refused)) == fields
    assert body(await client.get("/v1/rules", headers=admin))["version"] == 0

    # With its zone (any offset) the campaign is taken and applies to the events it covers.
    start, end = (now - timedelta(days=1)).astimezone(timezone(timedelta(hours=2))), now + timedelta(days=1)
    campaign = _campaign(start.isoformat(), end.isoformat())
    published = await client.put(
        "/v1/rules", headers=admin, json={"rules": {**rules, "campaigns": [campaign]}}
    )
    assert body(published)["version"] == 1
    pub = publisher(producer, org)
    await pub.share("s1", "a")
    a = bearer(settings, org=org, sub="a", roles=["advocate"])

    async def doubled() -> bool:
        entries = body(await client.get("/v1/me/ledger", headers=a))["items"]
        return [(e["kind"], e["points"]) for e in entries] == [("share_made", 20)]

    await eventually(doubled, timeout_s=90)


async def test_a_leaderboard_moment_without_a_time_zone_is_refused(
    client: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    """A moment without a zone says no period: it would be read in the server's own zone."""
    a = bearer(settings, org=new_org(), sub="a", roles=["advocate"])
    refused = await client.get("/v1/leaderboard", headers=a, params={"at": "2026-03-02T00:30:00"})
    assert _fields(refused) == ["at"]
    taken = await client.get("/v1/leaderboard", headers=a, params={"at": "2026-03-02T00:30:00+01:00"})
    assert body(taken)["period_key"] == "week:2026-W09"  # Sunday 1 March in UTC


async def test_a_cursor_this_list_did_not_return_is_a_422_naming_it(
    client: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    org = new_org()
    admin = bearer(settings, org=org, sub="boss", roles=["admin"])
    ledgers = encode_time_id(datetime.now(UTC), "e1")  # another list's cursor
    for cursor in (ledgers, encode_keys({"p": "ten", "a": "x"}), encode_keys({"p": 1, "a": None})):
        refused = await client.get("/v1/leaderboard", headers=admin, params={"cursor": cursor})
        assert _fields(refused) == ["cursor"], cursor
    for cursor in (ledgers, encode_keys({"v": "2"}), encode_keys({"v": 1.5}), encode_keys({"v": 10**30})):
        refused = await client.get("/v1/rules/versions", headers=admin, params={"cursor": cursor})
        assert _fields(refused) == ["cursor"], cursor
    # What the lists return still pages them.
    assert body(
        await client.get("/v1/leaderboard", headers=admin, params={"cursor": encode_keys({"p": 1, "a": "x"})})
    )
    assert body(
        await client.get("/v1/rules/versions", headers=admin, params={"cursor": encode_keys({"v": 2})})
    )
