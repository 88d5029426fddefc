"""The approval workflow and the library over HTTP, against real Kafka and SecantusDB."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from services.content.library.store import CONTENT
from services.content.settings import ContentSettings
from services.content.training.store import COURSES, POLICIES
from shared import idempotency
from shared.mongo import Document, create_client
from shared.settings import ChorusSettings
from tests.helpers import eventually, new_org
from tests.integration.content.conftest import Users, article

pytestmark = pytest.mark.integration


def soon(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def test_advocate_submission_is_reviewed_published_seen_by_its_audience_and_expires(
    client: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    users = Users(settings, new_org())
    ann = users.headers("ann", "advocate", team="sales", location="lyon")
    colleague = users.headers("carl", "advocate", team="sales", location="lyon")
    outsider = users.headers("otto", "advocate", team="engineering", location="lyon")

    body = article(audience={"teams": ["sales"]}, expires_at=soon(3))
    submitted = await client.post("/v1/content", json=body, headers=ann)
    assert submitted.status_code == 201, submitted.text
    item = submitted.json()
    assert item["status"] == "pending_review" and item["author_advocate_id"] == "ann"

    # Waiting for review: in the author's own list and the review queue, not in the library.
    assert ids(await client.get("/v1/content", params={"mine": "true"}, headers=ann)) == [item["id"]]
    assert ids(
        await client.get("/v1/content", params={"status": "pending_review"}, headers=users.editor)
    ) == [item["id"]]
    assert ids(await client.get("/v1/content", headers=colleague)) == []
    assert (await client.get(f"/v1/content/{item['id']}", headers=colleague)).status_code == 404

    published = await client.post(f"/v1/content/{item['id']}/publish", headers=users.editor)
    assert published.status_code == 200, published.text
    assert published.json()["status"] == "published"

    assert ids(await client.get("/v1/content", headers=colleague)) == [item["id"]]
    assert (await client.get(f"/v1/content/{item['id']}", headers=colleague)).status_code == 200
    assert ids(await client.get("/v1/content", headers=outsider)) == []
    assert (await client.get(f"/v1/content/{item['id']}", headers=outsider)).status_code == 404

    async def archived_as_expired() -> bool:
        current = (await client.get(f"/v1/content/{item['id']}", headers=users.editor)).json()
        return current["status"] == "archived" and current["archive_reason"] == "expired"

    await eventually(archived_as_expired, timeout_s=10)
    assert ids(await client.get("/v1/content", headers=colleague)) == []


async def test_a_rejected_submission_carries_the_reason_and_can_be_resubmitted(
    client: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    users = Users(settings, new_org())
    ann = users.headers("ann", "advocate")
    item = (await client.post("/v1/content", json=article(), headers=ann)).json()

    rejected = await client.post(
        f"/v1/content/{item['id']}/reject", json={"reason": "Off brand"}, headers=users.editor
    )
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected" and rejected.json()["rejection_reason"] == "Off brand"

    mine = (await client.get(f"/v1/content/{item['id']}", headers=ann)).json()
    assert mine["rejection_reason"] == "Off brand"
    again = await client.patch(f"/v1/content/{item['id']}", json={"title": "Better title"}, headers=ann)
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "pending_review" and again.json()["title"] == "Better title"


async def test_transitions_refused_by_role_and_state(
    client: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    users = Users(settings, new_org())
    ann = users.headers("ann", "advocate")
    bob = users.headers("bob", "advocate")
    submission = (await client.post("/v1/content", json=article(), headers=ann)).json()
    draft = (await client.post("/v1/content", json=article(), headers=users.editor)).json()
    assert draft["status"] == "draft" and draft["author_advocate_id"] is None

    async def status_of(content_id: str, headers: dict[str, str], path: str, **kw: object) -> int:
        return (await client.post(f"/v1/content/{content_id}/{path}", headers=headers, **kw)).status_code  # type: ignore[arg-type]

    # Advocates never publish or reject, not even their own submission.
    assert await status_of(submission["id"], ann, "publish") == 403
    assert await status_of(submission["id"], ann, "reject", json={"reason": "x"}) == 403
    # Another advocate cannot see a submission, so cannot act on it.
    assert await status_of(submission["id"], bob, "archive") == 404
    assert (
        await client.patch(f"/v1/content/{submission['id']}", json={"title": "x"}, headers=bob)
    ).status_code == 404
    # Drafts are not reviewable; admins publish them.
    assert await status_of(draft["id"], users.editor, "reject", json={"reason": "x"}) == 409
    assert await status_of(draft["id"], users.admin, "publish") == 200
    assert await status_of(draft["id"], users.editor, "publish") == 409
    # A published brand item: advocates see it but neither edit nor archive it.
    assert await status_of(draft["id"], ann, "archive") == 403
    assert (
        await client.patch(f"/v1/content/{draft['id']}", json={"title": "x"}, headers=ann)
    ).status_code == 403
    edited = await client.patch(f"/v1/content/{draft['id']}", json={"title": "Edited"}, headers=users.editor)
    assert edited.status_code == 200 and edited.json()["status"] == "published"
    # The author withdraws their own submission; then nothing else applies to it.
    assert await status_of(submission["id"], ann, "archive") == 200
    assert await status_of(submission["id"], users.editor, "publish") == 409
    assert await status_of(submission["id"], users.editor, "archive") == 409
    assert (
        await client.patch(f"/v1/content/{submission['id']}", json={"title": "x"}, headers=users.editor)
    ).status_code == 409
    # Editors archive the brand's item.
    assert await status_of(draft["id"], users.editor, "archive") == 200
    # Advocates may not browse other statuses; settings, policy and courses need their roles.
    assert (await client.get("/v1/content", params={"status": "draft"}, headers=ann)).status_code == 403
    assert (await client.put("/v1/settings", json={}, headers=users.editor)).status_code == 403
    assert (
        await client.post("/v1/policy/versions", json={"title": "t", "body": "b"}, headers=users.editor)
    ).status_code == 403
    course = {"title": "Basics", "modules": [{"title": "One", "body": "text"}]}
    assert (await client.post("/v1/courses", json=course, headers=ann)).status_code == 403
    assert (await client.get("/v1/content", headers={})).status_code == 401


async def test_library_filters_search_new_since_and_pagination(
    client: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    users = Users(settings, new_org())
    reader = users.headers("rita", "advocate")

    async def publish(**changes: object) -> str:
        created = (await client.post("/v1/content", json=article(**changes), headers=users.editor)).json()
        assert (
            await client.post(f"/v1/content/{created['id']}/publish", headers=users.editor)
        ).status_code == 200
        return str(created["id"])

    video = await publish(
        type="video",
        title="Factory tour",
        tags=["tour"],
        language="de",
        suggested_posts=[{"network": "mastodon", "text": "Tour #employee"}],
    )
    job = await publish(type="job_opening", title="Engineer wanted", summary="Join the LYON team")
    checkpoint = datetime.now(UTC).isoformat()
    newest = await publish(title="Quarterly results", summary=None)
    await publish(title="Hidden", starts_at=soon(3600))  # not live yet

    assert ids(await client.get("/v1/content", headers=reader)) == [newest, job, video]
    assert ids(await client.get("/v1/content", params={"tag": "tour"}, headers=reader)) == [video]
    assert ids(await client.get("/v1/content", params={"type": "job_opening"}, headers=reader)) == [job]
    assert ids(await client.get("/v1/content", params={"language": "de"}, headers=reader)) == [video]
    assert ids(await client.get("/v1/content", params={"network": "mastodon"}, headers=reader)) == [video]
    assert ids(await client.get("/v1/content", params={"network": "linkedin"}, headers=reader)) == [
        newest,
        job,
    ]
    assert ids(await client.get("/v1/content", params={"q": "lyon"}, headers=reader)) == [job]
    assert ids(await client.get("/v1/content", params={"q": "factory TOUR"}, headers=reader)) == [video]
    assert ids(await client.get("/v1/content", params={"q": ".*"}, headers=reader)) == []  # not a regex
    assert ids(await client.get("/v1/content", params={"since": checkpoint}, headers=reader)) == [newest]

    first = (await client.get("/v1/content", params={"limit": 2}, headers=reader)).json()
    assert [i["id"] for i in first["items"]] == [newest, job] and first["next_cursor"]
    second = (
        await client.get("/v1/content", params={"limit": 2, "cursor": first["next_cursor"]}, headers=reader)
    ).json()
    assert [i["id"] for i in second["items"]] == [video] and second["next_cursor"] is None
    bad = await client.get("/v1/content", params={"cursor": "%%%"}, headers=reader)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "cursor"


async def test_an_idempotency_key_replays_the_first_create(
    client: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    users = Users(settings, new_org())
    headers = {**users.editor, "Idempotency-Key": "create-1"}
    first = await client.post("/v1/content", json=article(), headers=headers)
    again = await client.post("/v1/content", json=article(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert "idempotent-replayed" not in first.headers and again.headers["idempotent-replayed"] == "true"
    assert len(ids(await client.get("/v1/content", params={"status": "draft"}, headers=users.editor))) == 1
    other = await client.post("/v1/content", json=article(title="Another"), headers=headers)
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == "Idempotency-Key"


@pytest.fixture(scope="module")
async def content_db(content_settings: ContentSettings) -> AsyncIterator[AsyncDatabase[Document]]:
    """The running app's database, to leave what a request whose answer was lost leaves."""
    mongo = create_client(content_settings)
    yield mongo[content_settings.database_name("content")]
    await mongo.close()


async def test_a_creates_retry_whose_first_answer_was_lost_finds_the_item_its_first_try_made(
    client: httpx.AsyncClient, settings: ChorusSettings, content_db: AsyncDatabase[Document]
) -> None:
    users = Users(settings, new_org())
    drafts = {"status": "draft"}
    headers = {**users.editor, "Idempotency-Key": "create-1"}
    first = await client.post("/v1/content", json=article(), headers=headers)
    assert first.status_code == 201, first.text
    # The answer lost (MongoDB failed over after the item was written): the retry runs again.
    await content_db[idempotency.COLLECTION].delete_many({"org": users.org})
    again = await client.post("/v1/content", json=article(), headers=headers)
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert ids(await client.get("/v1/content", params=drafts, headers=users.editor)) == [first.json()["id"]]

    # A day on, the key's record has expired, and the client uses the key again: a new item.
    a_day_ago = datetime.now(UTC) - timedelta(hours=25)
    await content_db[CONTENT].update_one({"_id": first.json()["id"]}, {"$set": {"created_at": a_day_ago}})
    await content_db[idempotency.COLLECTION].delete_many({"org": users.org})
    later = await client.post("/v1/content", json=article(), headers=headers)
    assert later.status_code == 201, later.text
    listed = ids(await client.get("/v1/content", params=drafts, headers=users.editor))
    assert listed == [later.json()["id"], first.json()["id"]]


COURSE = {"title": "Basics", "modules": [{"id": "m1", "title": "One", "body": "Why we share"}]}


async def test_a_course_creates_retry_whose_first_answer_was_lost_finds_the_course_its_first_try_made(
    client: httpx.AsyncClient, settings: ChorusSettings, content_db: AsyncDatabase[Document]
) -> None:
    users = Users(settings, new_org())
    headers = {**users.editor, "Idempotency-Key": "course-1"}
    first = await client.post("/v1/courses", json=COURSE, headers=headers)
    assert first.status_code == 201, first.text
    # The answer lost (MongoDB failed over after the course was written): the retry runs again.
    await content_db[idempotency.COLLECTION].delete_many({"org": users.org})
    again = await client.post("/v1/courses", json=COURSE, headers=headers)
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert ids(await client.get("/v1/courses", headers=users.editor)) == [first.json()["id"]]

    # A day on, the key's record has expired, and the client uses the key again: a new course.
    a_day_ago = datetime.now(UTC) - timedelta(hours=25)
    await content_db[COURSES].update_one({"_id": first.json()["id"]}, {"$set": {"created_at": a_day_ago}})
    await content_db[idempotency.COLLECTION].delete_many({"org": users.org})
    later = await client.post("/v1/courses", json=COURSE, headers=headers)
    assert later.status_code == 201, later.text
    listed = ids(await client.get("/v1/courses", headers=users.editor))
    assert listed == [later.json()["id"], first.json()["id"]]


async def test_a_policy_publishings_retry_whose_first_answer_was_lost_finds_the_version_it_published(
    client: httpx.AsyncClient, settings: ChorusSettings, content_db: AsyncDatabase[Document]
) -> None:
    users = Users(settings, new_org())
    headers = {**users.admin, "Idempotency-Key": "policy-1"}
    policy = {"title": "Policy", "body": "Be kind"}

    async def versions() -> list[int]:
        listed = await client.get("/v1/policy/versions", headers=users.editor)
        return [p["version"] for p in listed.json()["items"]]

    first = await client.post("/v1/policy/versions", json=policy, headers=headers)
    assert first.status_code == 201, first.text
    # The answer lost (MongoDB failed over after the version was written): the retry runs again.
    await content_db[idempotency.COLLECTION].delete_many({"org": users.org})
    again = await client.post("/v1/policy/versions", json=policy, headers=headers)
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert await versions() == [1]

    # A day on, the key's record has expired, and the client uses the key again: a new version.
    a_day_ago = datetime.now(UTC) - timedelta(hours=25)
    await content_db[POLICIES].update_one({"_id": f"{users.org}:1"}, {"$set": {"published_at": a_day_ago}})
    await content_db[idempotency.COLLECTION].delete_many({"org": users.org})
    later = await client.post("/v1/policy/versions", json=policy, headers=headers)
    assert later.status_code == 201, later.text
    assert await versions() == [2, 1]


async def test_courses_progress_completion_and_policy_acknowledgement(
    client: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    users = Users(settings, new_org())
    ann = users.headers("ann", "advocate")
    course = (
        await client.post(
            "/v1/courses",
            json={
                "title": "Social Media University",
                "modules": [
                    {"id": "intro", "title": "Intro", "body": "Why we share", "minutes": 5},
                    {"id": "video", "title": "Video", "url": "https://example.com/v", "minutes": 10},
                ],
            },
            headers=users.editor,
        )
    ).json()
    assert course["total_minutes"] == 15
    base = f"/v1/courses/{course['id']}"
    one = (await client.post(f"{base}/modules/intro/complete", headers=ann)).json()
    assert one["completed_module_ids"] == ["intro"] and one["completed_at"] is None
    done = (await client.post(f"{base}/modules/video/complete", headers=ann)).json()
    assert done["completed_at"] is not None
    assert (await client.post(f"{base}/modules/nope/complete", headers=ann)).status_code == 404
    assert (await client.get(f"{base}/progress", headers=ann)).json()["completed_at"] == done["completed_at"]
    seen_by_editor = await client.get(f"{base}/progress", params={"advocate_id": "ann"}, headers=users.editor)
    assert seen_by_editor.json()["completed_module_ids"] == ["intro", "video"]
    bob = users.headers("bob", "advocate")
    assert (
        await client.get(f"{base}/progress", params={"advocate_id": "ann"}, headers=bob)
    ).status_code == 403

    assert (await client.get("/v1/policy", headers=ann)).json() == {"policy": None, "acknowledged_at": None}
    assert (
        await client.post("/v1/policy/acknowledgements", json={"version": 1}, headers=ann)
    ).status_code == 409
    v1 = (
        await client.post(
            "/v1/policy/versions", json={"title": "Policy", "body": "Be kind"}, headers=users.admin
        )
    ).json()
    v2 = (
        await client.post(
            "/v1/policy/versions", json={"title": "Policy 2", "body": "Be kinder"}, headers=users.admin
        )
    ).json()
    assert (v1["version"], v2["version"]) == (1, 2)
    assert (
        await client.post("/v1/policy/acknowledgements", json={"version": 1}, headers=ann)
    ).status_code == 409
    acked = await client.post("/v1/policy/acknowledgements", json={"version": 2}, headers=ann)
    assert acked.status_code == 200 and acked.json()["acknowledged_at"] is not None
    assert (await client.get("/v1/policy", headers=ann)).json()["acknowledged_at"] is not None
    versions = (await client.get("/v1/policy/versions", params={"limit": 1}, headers=users.editor)).json()
    assert [p["version"] for p in versions["items"]] == [2]
    rest = (
        await client.get(
            "/v1/policy/versions", params={"cursor": versions["next_cursor"]}, headers=users.editor
        )
    ).json()
    assert [p["version"] for p in rest["items"]] == [1]

    saved = await client.put(
        "/v1/settings",
        json={
            "required_disclosure": "#employee",
            "required_course_ids": [course["id"]],
            "require_policy_acknowledgement": True,
        },
        headers=users.admin,
    )
    assert saved.status_code == 200, saved.text
    assert (await client.get("/v1/settings", headers=ann)).json()["required_course_ids"] == [course["id"]]
