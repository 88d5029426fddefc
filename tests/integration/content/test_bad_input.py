"""Bad input gets a problem+json 4xx naming the field, and nothing is stored or emitted."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from services.content.main import OUTBOX_COLLECTIONS
from shared.settings import ChorusSettings
from tests.helpers import new_org, outbox_sent, tap
from tests.integration.content.conftest import Users, article

pytestmark = pytest.mark.integration

BAD_CREATES: list[tuple[str, dict[str, Any], int, str]] = [
    ("ftp url", article(url="ftp://example.com/file"), 422, "url"),
    ("javascript image", article(image_url="javascript:alert(1)"), 422, "image_url"),
    (
        "caption over the x limit",
        article(suggested_posts=[{"network": "x", "text": "#employee " + "a" * 280}]),
        422,
        "suggested_posts[0].text",
    ),
    (
        # 280 characters fill a post on X, but the share adds a space and its link (23 on X).
        "x caption at the limit without room for the link",
        article(suggested_posts=[{"network": "x", "text": "#employee " + "a" * 270}]),
        422,
        "suggested_posts[0].text",
    ),
    (
        # X weighs most CJK characters 2: the disclosure, 124 of them and the link weigh 282.
        "x caption in japanese over X's weighted limit",
        article(suggested_posts=[{"network": "x", "language": "ja", "text": "#employee " + "日" * 124}]),
        422,
        "suggested_posts[0].text",
    ),
    (
        "unknown network",
        article(suggested_posts=[{"network": "myspace", "text": "#employee"}]),
        422,
        "suggested_posts[0].network",
    ),
    (
        "missing disclosure",
        article(
            suggested_posts=[
                {"network": "linkedin", "text": "#employee ok"},
                {"network": "x", "text": "no tag"},
            ]
        ),
        422,
        "suggested_posts[1].text",
    ),
    ("blocked word in the title", article(title="Guaranteed returns"), 422, "title"),
    (
        "blocked word in a caption",
        article(suggested_posts=[{"network": "linkedin", "text": "#employee GUARANTEED"}]),
        422,
        "suggested_posts[0].text",
    ),
    (
        "expiry before start",
        article(starts_at="2030-01-02T00:00:00Z", expires_at="2030-01-01T00:00:00Z"),
        422,
        "expires_at",
    ),
    ("title too long", article(title="t" * 301), 422, "title"),
    ("unknown field", article(colour="red"), 422, "colour"),
    (
        "payload over the size limit",
        article(suggested_posts=[{"network": "facebook", "text": "#employee " + "a" * 40_000}] * 2),
        413,
        "body",
    ),
]


def assert_problem(response: httpx.Response, status: int, field: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status
    assert field in [e["field"] for e in problem["errors"]], problem


async def test_bad_input_is_refused_naming_the_field_and_leaves_no_trace(
    client: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    org = new_org()
    users = Users(settings, org)
    ann = users.headers("ann", "advocate")
    put = await client.put(
        "/v1/settings",
        json={
            "required_disclosure": "#employee",
            "blocked_words": ["guaranteed"],
            "time_zone": "America/Los_Angeles",
        },
        headers=users.admin,
    )
    assert put.status_code == 200 and put.json()["time_zone"] == "America/Los_Angeles"
    existing = (await client.post("/v1/content", json=article(), headers=users.editor)).json()
    assert (
        await client.post(f"/v1/content/{existing['id']}/publish", headers=users.editor)
    ).status_code == 200
    course = (
        await client.post(
            "/v1/courses",
            json={"title": "Basics", "modules": [{"title": "One", "body": "x"}]},
            headers=users.editor,
        )
    ).json()
    # The events of these writes are out before the taps open.
    await outbox_sent(client._transport.app.state.runtime.db, OUTBOX_COLLECTIONS, org)  # type: ignore[attr-defined]

    async with (
        tap(settings, "chorus.content") as content_tap,
        tap(settings, "chorus.training") as training_tap,
    ):
        for name, body, status, field in BAD_CREATES:
            for who in (ann, users.editor):
                response = await client.post(
                    "/v1/content", json=body, headers={**who, "Idempotency-Key": name}
                )
                assert_problem(response, status, field)
        assert_problem(
            await client.patch(
                f"/v1/content/{existing['id']}", json={"url": "mailto:a@b.c"}, headers=users.editor
            ),
            422,
            "url",
        )
        assert_problem(
            await client.patch(f"/v1/content/{existing['id']}", json={"title": None}, headers=users.editor),
            422,
            "title",
        )
        assert_problem(
            await client.patch(
                f"/v1/content/{existing['id']}",
                json={"expires_at": "2020-01-01T00:00:00Z"},
                headers=users.editor,
            ),
            422,
            "expires_at",
        )
        assert_problem(
            await client.put(
                "/v1/settings", json={"fallback_url": "ftp://x", "blocked_words": ["a"]}, headers=users.admin
            ),
            422,
            "fallback_url",
        )
        for zone in ("Mars/Olympus", "America", "PST8PDT/../x", ""):
            assert_problem(
                await client.put("/v1/settings", json={"time_zone": zone}, headers=users.admin),
                422,
                "time_zone",
            )
        assert_problem(
            await client.put("/v1/settings", json={"required_course_ids": ["nope"]}, headers=users.admin),
            422,
            "required_course_ids[0]",
        )
        assert_problem(
            await client.post(
                "/v1/courses", json={"title": "x", "modules": [{"title": "m"}]}, headers=users.editor
            ),
            422,
            "modules[0].body",
        )
        assert_problem(
            await client.put(
                f"/v1/courses/{course['id']}",
                json={"title": "x", "modules": [{"title": "m", "url": "ftp://x"}]},
                headers=users.editor,
            ),
            422,
            "modules[0].url",
        )
        assert_problem(
            await client.post("/v1/policy/versions", json={"title": "", "body": "b"}, headers=users.admin),
            422,
            "title",
        )

        def ours(event: object) -> bool:
            return getattr(event, "tenant", None) == org

        assert await content_tap.collect(ours, count=1, timeout_s=1.5) == []
        assert await training_tap.collect(ours, count=1, timeout_s=0.5) == []

    # Nothing stored: the only item is the one made before, unchanged; settings and course unchanged.
    for status in ("draft", "pending_review", "published", "rejected", "archived"):
        listed = (await client.get("/v1/content", params={"status": status}, headers=users.editor)).json()
        assert [i["id"] for i in listed["items"]] == ([existing["id"]] if status == "published" else []), (
            status
        )
    assert (await client.get("/v1/content", params={"mine": "true"}, headers=ann)).json()["items"] == []
    current = (await client.get(f"/v1/content/{existing['id']}", headers=users.editor)).json()
    assert current["url"] == existing["url"] and current["title"] == existing["title"]
    assert current["expires_at"] is None
    stored_settings = (await client.get("/v1/settings", headers=users.admin)).json()
    assert stored_settings["fallback_url"] is None and stored_settings["blocked_words"] == ["guaranteed"]
    assert stored_settings["time_zone"] == "America/Los_Angeles"
    courses = (await client.get("/v1/courses", headers=users.editor)).json()["items"]
    assert [(c["id"], c["modules"][0]["url"]) for c in courses] == [(course["id"], None)]
    assert (await client.get("/v1/policy", headers=ann)).json()["policy"] is None


async def test_rejecting_without_a_reason_names_the_field(
    client: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    users = Users(settings, new_org())
    item = (await client.post("/v1/content", json=article(), headers=users.headers("ann", "advocate"))).json()
    assert_problem(
        await client.post(f"/v1/content/{item['id']}/reject", json={}, headers=users.editor), 422, "reason"
    )
    assert_problem(
        await client.post(f"/v1/content/{item['id']}/reject", json={"reason": "  "}, headers=users.editor),
        422,
        "reason",
    )
    assert (await client.get(f"/v1/content/{item['id']}", headers=users.editor)).json()[
        "status"
    ] == "pending_review"


async def test_training_refuses_blank_text_booleans_and_crafted_cursors(
    client: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    users = Users(settings, new_org())
    course = {"title": "Basics", "modules": [{"id": "m1", "title": "One", "body": "x"}]}
    course_id = (await client.post("/v1/courses", json=course, headers=users.editor)).json()["id"]
    for body, field in (({"title": " \t", "body": "b"}, "title"), ({"title": "P", "body": " \n "}, "body")):
        assert_problem(await client.post("/v1/policy/versions", json=body, headers=users.admin), 422, field)
    assert (await client.get("/v1/policy", headers=users.admin)).json()["policy"] is None
    blank_course = {**course, "title": "   "}
    assert_problem(await client.post("/v1/courses", json=blank_course, headers=users.editor), 422, "title")
    blank_module = {"title": "Basics", "modules": [{"id": "m1", "title": "  ", "body": "x"}]}
    assert_problem(
        await client.put(f"/v1/courses/{course_id}", json=blank_module, headers=users.editor),
        422,
        "modules[0].title",
    )
    boolean_minutes = {
        "title": "Basics",
        "modules": [{"id": "m1", "title": "One", "body": "x", "minutes": True}],
    }
    assert_problem(
        await client.put(f"/v1/courses/{course_id}", json=boolean_minutes, headers=users.editor),
        422,
        "modules[0].minutes",
    )
    courses = (await client.get("/v1/courses", headers=users.editor)).json()["items"]
    assert [(c["title"], c["modules"][0]["title"], c["modules"][0]["minutes"]) for c in courses] == [
        ("Basics", "One", 5)
    ]
    # Version 1 is current: `true` would have been taken for it.
    published = await client.post(
        "/v1/policy/versions", json={"title": "P", "body": "B"}, headers=users.admin
    )
    assert published.status_code == 201
    assert_problem(
        await client.post("/v1/policy/acknowledgements", json={"version": True}, headers=users.editor),
        422,
        "version",
    )
    assert (await client.get("/v1/policy", headers=users.editor)).json()["acknowledged_at"] is None
    # A cursor this API never returned: a digit that is not ASCII, a number past BSON's integers.
    for below in ("²", "9" * 20):
        cursor = base64.urlsafe_b64encode(below.encode()).decode().rstrip("=")
        assert_problem(
            await client.get("/v1/policy/versions", params={"cursor": cursor}, headers=users.editor),
            422,
            "cursor",
        )
