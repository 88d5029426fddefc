"""One organisation cannot read or change another's data; an erased advocate leaves no trace."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from services.content.library.store import CONTENT, LibraryStore
from services.content.program.store import SETTINGS
from services.content.settings import ContentSettings
from services.content.training.store import COURSES, POLICIES, TrainingStore
from shared.events import Event
from shared.events.advocates import AdvocateErased
from shared.messaging import EventProducer
from shared.mongo import create_client
from shared.settings import ChorusSettings
from tests.helpers import eventually, new_org
from tests.integration.content.conftest import Users, article

pytestmark = pytest.mark.integration


async def test_one_organisation_can_neither_read_nor_change_anothers_data(
    client: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    a, b = Users(settings, new_org()), Users(settings, new_org())
    published = (await client.post("/v1/content", json=article(), headers=a.editor)).json()
    await client.post(f"/v1/content/{published['id']}/publish", headers=a.editor)
    submission = (
        await client.post("/v1/content", json=article(), headers=a.headers("ann", "advocate"))
    ).json()
    course = (
        await client.post(
            "/v1/courses",
            json={"title": "A only", "modules": [{"id": "m1", "title": "One", "body": "x"}]},
            headers=a.editor,
        )
    ).json()
    assert (
        await client.put("/v1/settings", json={"required_disclosure": "#a-corp"}, headers=a.admin)
    ).status_code == 200
    assert (
        await client.post("/v1/policy/versions", json={"title": "A", "body": "A"}, headers=a.admin)
    ).status_code == 201

    for headers in (b.admin, b.editor, b.headers("bea", "advocate")):
        for content_id in (published["id"], submission["id"]):
            assert (await client.get(f"/v1/content/{content_id}", headers=headers)).status_code == 404
            assert (
                await client.patch(f"/v1/content/{content_id}", json={"title": "Mine now"}, headers=headers)
            ).status_code == 404
            assert (
                await client.post(f"/v1/content/{content_id}/archive", headers=headers)
            ).status_code == 404
        assert (await client.get("/v1/content", headers=headers)).json()["items"] == []
        assert (await client.get(f"/v1/courses/{course['id']}", headers=headers)).status_code == 404
        assert (await client.get(f"/v1/courses/{course['id']}/progress", headers=headers)).status_code == 404
        assert (
            await client.post(f"/v1/courses/{course['id']}/modules/m1/complete", headers=headers)
        ).status_code == 404
        assert (await client.get("/v1/courses", headers=headers)).json()["items"] == []
        assert (await client.get("/v1/settings", headers=headers)).json()["required_disclosure"] is None
        assert (await client.get("/v1/policy", headers=headers)).json()["policy"] is None
    for path, body in (("publish", None), ("reject", {"reason": "no"})):
        assert (
            await client.post(f"/v1/content/{submission['id']}/{path}", json=body, headers=b.editor)
        ).status_code == 404
    assert (
        await client.put(
            f"/v1/courses/{course['id']}",
            json={"title": "B", "modules": [{"title": "x", "body": "x"}]},
            headers=b.editor,
        )
    ).status_code == 404
    # B's settings are B's own: saving them changes nothing of A's, and A's courses are unknown to B.
    assert (
        await client.put("/v1/settings", json={"required_course_ids": [course["id"]]}, headers=b.admin)
    ).status_code == 422
    assert (
        await client.put("/v1/settings", json={"required_disclosure": "#b-corp"}, headers=b.admin)
    ).status_code == 200
    assert (await client.get("/v1/settings", headers=a.admin)).json()["required_disclosure"] == "#a-corp"
    # A token for org B cannot claim to act for org A.
    claimed = await client.get("/v1/content", headers={**b.editor, "X-Chorus-Org": a.org})
    assert claimed.status_code == 403
    # A's data is intact.
    assert (await client.get(f"/v1/content/{published['id']}", headers=a.editor)).json()[
        "title"
    ] == published["title"]
    assert (await client.get(f"/v1/courses/{course['id']}", headers=a.editor)).json()["title"] == "A only"


async def test_an_erased_advocate_loses_progress_and_acknowledgements_and_authorship(
    client: httpx.AsyncClient, settings: ChorusSettings, content_settings: ContentSettings
) -> None:
    users = Users(settings, new_org())
    ann = users.headers("ann", "advocate")
    ben = users.headers("ben", "advocate")
    course = (
        await client.post(
            "/v1/courses",
            json={
                "title": "Basics",
                "modules": [
                    {"id": "m1", "title": "One", "body": "x"},
                    {"id": "m2", "title": "Two", "body": "y"},
                ],
            },
            headers=users.editor,
        )
    ).json()
    await client.post("/v1/policy/versions", json={"title": "P", "body": "B"}, headers=users.admin)
    for headers in (ann, ben):
        assert (
            await client.post(f"/v1/courses/{course['id']}/modules/m1/complete", headers=headers)
        ).status_code == 200
        assert (
            await client.post("/v1/policy/acknowledgements", json={"version": 1}, headers=headers)
        ).status_code == 200
    # Made with an Idempotency-Key, which the item keeps for a retry (the client's text: it may name her).
    keyed = {**ann, "Idempotency-Key": "ann@example.com-1"}
    submission = (await client.post("/v1/content", json=article(), headers=keyed)).json()
    await client.post(f"/v1/content/{submission['id']}/publish", headers=users.editor)
    # Her submissions that never became the organisation's content go with her.
    pending = (await client.post("/v1/content", json=article(title="Mine"), headers=ann)).json()
    rejected = (await client.post("/v1/content", json=article(title="Also mine"), headers=ann)).json()
    reason = {"reason": "Off topic"}
    await client.post(f"/v1/content/{rejected['id']}/reject", json=reason, headers=users.editor)
    # Withdrawn while it waited for review: archived, never published, so hers too.
    withdrawn = (await client.post("/v1/content", json=article(title="Withdrawn"), headers=ann)).json()
    assert (await client.post(f"/v1/content/{withdrawn['id']}/archive", headers=ann)).status_code == 200
    # Published, then archived: it was the organisation's content, so it stays.
    retired = (await client.post("/v1/content", json=article(title="Retired"), headers=ann)).json()
    await client.post(f"/v1/content/{retired['id']}/publish", headers=users.editor)
    assert (await client.post(f"/v1/content/{retired['id']}/archive", headers=ann)).status_code == 200
    bens = (await client.post("/v1/content", json=article(title="Ben's"), headers=ben)).json()

    producer = EventProducer(settings, client_id="content-erasure-test")
    await producer.start()
    try:
        erased = AdvocateErased(advocate_id="ann", requested_by="dpo")
        await producer.publish(Event.create(erased, tenant=users.org, source="/tests"))
    finally:
        await producer.stop()

    async def erased_everywhere() -> bool:
        item = (await client.get(f"/v1/content/{submission['id']}", headers=users.editor)).json()
        progress = (await client.get(f"/v1/courses/{course['id']}/progress", headers=ann)).json()
        policy = (await client.get("/v1/policy", headers=ann)).json()
        return (
            item["author_advocate_id"] is None
            and progress["completed_module_ids"] == []
            and policy["acknowledged_at"] is None
        )

    await eventually(erased_everywhere, timeout_s=30)
    # The item stays in the library, anonymous; other advocates keep their records.
    item = (await client.get(f"/v1/content/{submission['id']}", headers=users.editor)).json()
    assert item["status"] == "published"
    for gone in (pending, rejected, withdrawn):
        assert (await client.get(f"/v1/content/{gone['id']}", headers=users.editor)).status_code == 404
    kept_archived = (await client.get(f"/v1/content/{retired['id']}", headers=users.editor)).json()
    assert (kept_archived["status"], kept_archived["author_advocate_id"]) == ("archived", None)
    assert (await client.get(f"/v1/content/{bens['id']}", headers=users.editor)).status_code == 200
    mongo = create_client(content_settings)
    try:
        kept = await mongo[content_settings.database_name("content")][CONTENT].find_one(
            {"_id": submission["id"]}
        )
    finally:
        await mongo.close()
    assert kept is not None and (kept["created_by"], kept["request_key"]) == ("erased", None)
    assert (await client.get(f"/v1/courses/{course['id']}/progress", headers=ben)).json()[
        "completed_module_ids"
    ] == ["m1"]
    assert (await client.get("/v1/policy", headers=ben)).json()["acknowledged_at"] is not None


async def test_erasing_a_staff_member_leaves_what_they_made_naming_nobody(
    client: httpx.AsyncClient, settings: ChorusSettings, content_settings: ContentSettings
) -> None:
    """A staff member is also an advocate (one `sub`): the items they published, the courses
    they made, the policies they published and the settings they saved stay, naming nobody, in
    their organisation only."""
    a, b = Users(settings, new_org()), Users(settings, new_org())
    made: dict[str, dict[str, str]] = {}  # org -> collection -> id
    for users in (a, b):
        staff = users.headers("sam", "admin", "editor", "advocate")
        item = (await client.post("/v1/content", json=article(), headers=users.editor)).json()
        assert (await client.post(f"/v1/content/{item['id']}/publish", headers=staff)).status_code == 200
        # Made with an Idempotency-Key, which they keep for a retry (the client's text: it may name sam).
        keyed = {**staff, "Idempotency-Key": "sam@example.com-1"}
        course = {"title": "Basics", "modules": [{"id": "m1", "title": "One", "body": "x"}]}
        course_id = (await client.post("/v1/courses", json=course, headers=keyed)).json()["id"]
        policy = {"title": "P", "body": "B"}
        assert (await client.post("/v1/policy/versions", json=policy, headers=keyed)).status_code == 201
        settings_body = {"required_disclosure": "#ad"}
        assert (await client.put("/v1/settings", json=settings_body, headers=staff)).status_code == 200
        made[users.org] = {
            CONTENT: item["id"],
            COURSES: course_id,
            POLICIES: f"{users.org}:1",
            SETTINGS: users.org,
        }

    producer = EventProducer(settings, client_id="content-staff-erasure-test")
    await producer.start()
    try:
        erased = AdvocateErased(advocate_id="sam", requested_by="dpo")
        await producer.publish(Event.create(erased, tenant=a.org, source="/tests"))
    finally:
        await producer.stop()

    person_field = {
        CONTENT: "published_by",
        COURSES: "created_by",
        POLICIES: "published_by",
        SETTINGS: "updated_by",
    }
    mongo = create_client(content_settings)
    db = mongo[content_settings.database_name("content")]

    async def stored(org: str) -> dict[str, str]:
        found = {}
        for collection, doc_id in made[org].items():
            doc = await db[collection].find_one({"_id": doc_id, "org": org})
            assert doc is not None, (collection, doc_id)
            found[collection] = doc[person_field[collection]]
        return found

    async def erased_in_a() -> bool:
        return await stored(a.org) == dict.fromkeys(person_field, "erased")

    async def request_keys(org: str) -> list[str | None]:
        kept = [await db[c].find_one({"_id": made[org][c], "org": org}) for c in (COURSES, POLICIES)]
        return [doc["request_key"] for doc in kept if doc is not None]

    try:
        await eventually(erased_in_a, timeout_s=30)
        assert await stored(b.org) == dict.fromkeys(person_field, "sam")
        assert await request_keys(a.org) == [None, None]
        assert await request_keys(b.org) == ["sam@example.com-1"] * 2
    finally:
        await mongo.close()


async def test_a_save_that_read_before_an_erasure_does_not_write_the_person_back(
    client: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    """An edit, a publication or the sweeper holding an item read before the erasure is refused
    (the erasure raised its version); a course replaced from a copy read before keeps its
    creator erased."""
    users = Users(settings, new_org())
    ann = {**users.headers("ann", "advocate", "editor"), "Idempotency-Key": "ann@example.com-2"}
    submission = (await client.post("/v1/content", json=article(), headers=ann)).json()
    course_body = {"title": "Basics", "modules": [{"id": "m1", "title": "One", "body": "x"}]}
    course_id = (await client.post("/v1/courses", json=course_body, headers=ann)).json()["id"]
    db = client._transport.app.state.runtime.db  # type: ignore[attr-defined]
    library, training = LibraryStore(db), TrainingStore(db)
    read = await library.get_content(users.org, submission["id"])
    course = await training.get_course(users.org, course_id)
    assert read is not None and course is not None

    await library.erase_author(users.org, "ann")
    await training.erase_training(users.org, "ann")

    item, version = read
    edited = dataclasses.replace(item, fields=dataclasses.replace(item.fields, title="Edited"))
    assert not await library.save_content(edited, version, [])
    assert await training.replace_course(dataclasses.replace(course, title="Renamed"), course.version)
    doc = await db[CONTENT].find_one({"_id": submission["id"], "org": users.org})
    assert doc is not None
    assert (doc["title"], doc["author_advocate_id"], doc["created_by"], doc["request_key"]) == (
        article()["title"],
        None,
        "erased",
        None,
    )
    stored = await db[COURSES].find_one({"_id": course_id, "org": users.org})
    assert stored is not None
    assert (stored["title"], stored["created_by"], stored["request_key"]) == ("Renamed", "erased", None)
