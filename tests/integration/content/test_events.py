"""Every transition's event, read from the real broker and checked against its published schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import jsonschema
import pytest

from services.content.library.store import CONTENT, EXPIRING, expired_filter
from services.content.main import OUTBOX_COLLECTIONS
from services.content.program.domain import OrgSettings
from services.content.program.store import SETTINGS, ProgramStore
from services.content.settings import ContentSettings
from shared.events import Event, EventData
from shared.events.content import ContentPublished, ContentRejected, SettingsUpdated
from shared.events.envelope import json_schema
from shared.events.personal import is_pseudonym
from shared.mongo import create_client
from shared.outbox import OUTBOX, OUTBOX_SINCE, PENDING_FILTER, pending
from shared.settings import ChorusSettings
from tests.helpers import TopicTap, eventually, new_org, tap
from tests.integration.content.conftest import Users, article
from tests.integration.query_plans import plan_stages, uses_an_index

pytestmark = pytest.mark.integration

CONTENT_TYPES = [
    "chorus.settings.updated",
    "chorus.policy.published",
    "chorus.content.submitted",
    "chorus.content.rejected",
    "chorus.content.published",
    "chorus.content.updated",
    "chorus.content.archived",
]
TRAINING_TYPES = ["chorus.course.completed", "chorus.policy.acknowledged"]


def validate_records(records: list[object], org: str) -> list[dict[str, object]]:
    """Each record of this org, as its raw JSON, after validating it against its type's schema."""
    valid = []
    for record in records:
        raw = json.loads(record.value)  # type: ignore[attr-defined]
        if raw.get("tenant") != org:
            continue
        jsonschema.validate(raw, json_schema(raw["type"]))
        assert record.key.decode() == raw["subject"]  # type: ignore[attr-defined]
        valid.append(raw)
    return valid


async def test_every_transition_emits_an_event_that_matches_its_schema(
    client: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    org = new_org()
    users = Users(settings, org)
    ann = users.headers("ann", "advocate", team="sales")
    async with (
        tap(settings, "chorus.content") as content_tap,
        tap(settings, "chorus.training") as training_tap,
    ):
        assert (
            await client.put(
                "/v1/settings",
                json={"required_disclosure": "#employee", "daily_share_limit": 5},
                headers=users.admin,
            )
        ).status_code == 200
        assert (
            await client.post(
                "/v1/policy/versions", json={"title": "Policy", "body": "Be kind"}, headers=users.admin
            )
        ).status_code == 201
        rejected = (await client.post("/v1/content", json=article(), headers=ann)).json()
        assert (
            await client.post(
                f"/v1/content/{rejected['id']}/reject", json={"reason": "Duplicate"}, headers=users.editor
            )
        ).status_code == 200
        expires = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        item = (
            await client.post(
                "/v1/content", json=article(audience={"teams": ["sales"]}, expires_at=expires), headers=ann
            )
        ).json()
        assert (
            await client.post(f"/v1/content/{item['id']}/publish", headers=users.editor)
        ).status_code == 200
        assert (
            await client.patch(
                f"/v1/content/{item['id']}", json={"tags": ["news", "lyon"]}, headers=users.editor
            )
        ).status_code == 200
        brand = (await client.post("/v1/content", json=article(), headers=users.editor)).json()
        assert (
            await client.post(f"/v1/content/{brand['id']}/publish", headers=users.editor)
        ).status_code == 200
        assert (
            await client.post(f"/v1/content/{brand['id']}/archive", headers=users.editor)
        ).status_code == 200

        course = (
            await client.post(
                "/v1/courses",
                json={"title": "Basics", "modules": [{"id": "m1", "title": "One", "body": "text"}]},
                headers=users.editor,
            )
        ).json()
        assert (
            await client.post(f"/v1/courses/{course['id']}/modules/m1/complete", headers=ann)
        ).status_code == 200
        assert (
            await client.post(f"/v1/courses/{course['id']}/modules/m1/complete", headers=ann)
        ).status_code == 200
        assert (
            await client.post("/v1/policy/acknowledgements", json={"version": 1}, headers=ann)
        ).status_code == 200
        assert (
            await client.post("/v1/policy/acknowledgements", json={"version": 1}, headers=ann)
        ).status_code == 200

        def ours(event: Event[EventData]) -> bool:
            return event.tenant == org

        # 9 transitions plus the sweeper's archive of `item`; the repeats above must add nothing.
        await content_tap.collect(ours, count=10, timeout_s=20, settle_s=0.5)
        await training_tap.collect(ours, count=2, timeout_s=10, settle_s=0.5)

    content_events = validate_records(content_tap.raw, org)
    training_events = validate_records(training_tap.raw, org)
    assert sorted({e["type"] for e in content_events}) == sorted(CONTENT_TYPES)
    assert [e["type"] for e in training_events] == TRAINING_TYPES

    by_type: dict[str, list[dict[str, object]]] = {}
    for event in content_events:
        by_type.setdefault(str(event["type"]), []).append(event)
    counts = {name: len(events) for name, events in by_type.items()}
    assert counts == {
        "chorus.settings.updated": 1,
        "chorus.policy.published": 1,
        "chorus.content.submitted": 2,
        "chorus.content.rejected": 1,
        "chorus.content.published": 2,
        "chorus.content.updated": 1,
        "chorus.content.archived": 2,
    }
    published = next(e["data"] for e in by_type["chorus.content.published"] if e["subject"] == item["id"])
    assert isinstance(published, dict)
    assert published["audience"] == {"teams": ["sales"], "departments": [], "locations": []}
    assert published["url"] == "https://example.com/news/lyon"
    assert published["networks"] == ["linkedin", "x"]
    # On the topic people are pseudonyms (docs/erasure.md); a consumer reads them back as ids.
    assert is_pseudonym(published["author_advocate_id"]) and is_pseudonym(published["published_by"])
    revealed = next(
        e.data
        for e in content_tap.seen
        if isinstance(e.data, ContentPublished) and e.subject == item["id"] and e.tenant == org
    )
    assert (revealed.author_advocate_id, revealed.published_by) == ("ann", "editor-1")
    assert published["expires_at"] is not None
    updated = by_type["chorus.content.updated"][0]["data"]
    assert (
        isinstance(updated, dict) and updated["tags"] == ["news", "lyon"] and updated["status"] == "published"
    )
    archived = sorted((e["subject"], e["data"]["reason"]) for e in by_type["chorus.content.archived"])  # type: ignore[index]
    assert archived == sorted([(brand["id"], "manual"), (item["id"], "expired")])
    rejected_event = by_type["chorus.content.rejected"][0]["data"]
    assert rejected_event == {
        "content_id": rejected["id"],
        "reason": "Duplicate",
        "author_advocate_id": revealed_author_pseudonym(content_tap, rejected["id"]),
    }
    settings_event = by_type["chorus.settings.updated"][0]["data"]
    assert isinstance(settings_event, dict)
    assert settings_event["required_disclosure"] == "#employee" and settings_event["daily_share_limit"] == 5
    pseudonym = training_events[0]["data"]["advocate_id"]  # type: ignore[index]
    assert is_pseudonym(pseudonym) and pseudonym == training_events[1]["data"]["advocate_id"]  # type: ignore[index]
    assert training_events[0]["data"] == {
        "advocate_id": pseudonym,
        "course_id": course["id"],
        "title": "Basics",
    }
    assert training_events[1]["data"] == {"advocate_id": pseudonym, "policy_version": 1}
    # Read as a consumer reads them, the pseudonym is ann again.
    assert {e.data.advocate_id for e in training_tap.seen if e.tenant == org} == {"ann"}  # type: ignore[attr-defined]


async def test_a_course_replaced_without_the_modules_left_is_completed_once(
    client: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    """Ann did a and b of [a, b, c]; the course becomes [a, b]: she has completed it, announced
    once, whatever she or an editor does next. Bob, who did only a, has not."""
    org = new_org()
    users = Users(settings, org)
    ann, bob = users.headers("ann", "advocate"), users.headers("bob", "advocate")
    modules = [{"id": m, "title": m, "body": "x"} for m in ("a", "b", "c")]
    course = await client.post("/v1/courses", json={"title": "T", "modules": modules}, headers=users.editor)
    course_id = course.json()["id"]
    async with tap(settings, "chorus.training") as training_tap:
        for who, module in ((ann, "a"), (ann, "b"), (bob, "a")):
            done = await client.post(f"/v1/courses/{course_id}/modules/{module}/complete", headers=who)
            assert done.status_code == 200 and done.json()["completed_at"] is None
        shorter = {"title": "T", "modules": modules[:2]}
        for _ in range(2):
            put = await client.put(f"/v1/courses/{course_id}", json=shorter, headers=users.editor)
            assert put.status_code == 200, put.text
        # Completed by the replacement itself: she has no module left to complete.
        anns = (await client.get(f"/v1/courses/{course_id}/progress", headers=ann)).json()
        assert anns["completed_at"] is not None
        again = await client.post(f"/v1/courses/{course_id}/modules/a/complete", headers=ann)
        assert again.json()["completed_at"] is not None
        bobs = (await client.get(f"/v1/courses/{course_id}/progress", headers=bob)).json()
        assert bobs["completed_at"] is None

        def ours(event: object) -> bool:
            return getattr(event, "tenant", None) == org

        completed = await training_tap.collect(ours, count=2, timeout_s=10, settle_s=0.5)
    assert [(e.type, e.data.advocate_id, e.data.course_id) for e in completed] == [  # type: ignore[attr-defined]
        ("chorus.course.completed", "ann", course_id)
    ]


async def test_the_relay_publishes_events_left_in_an_outbox(
    client: httpx.AsyncClient, settings: ChorusSettings, content_settings: ContentSettings
) -> None:
    """A crash between the write and the publish leaves the event in the document; the relay
    finds it through its index, sends it, and takes the document off that index."""
    org = new_org()
    event = Event.create(
        SettingsUpdated(org_id=org, blocked_words=["spam"]), tenant=org, source="/chorus/content", subject=org
    )
    mongo = create_client(content_settings)
    db = mongo[content_settings.database_name("content")]
    store = ProgramStore(db)
    try:
        async with tap(settings, "chorus.content") as content_tap:
            # The write update_settings makes, and no publish after it.
            await store.save_settings(
                org,
                OrgSettings(blocked_words=["spam"]),
                "admin-1",
                datetime.now(UTC),
                [pending(event)],
            )
            seen = await content_tap.collect(lambda e: e.tenant == org, count=1, timeout_s=10)
        assert [e.id for e in seen] == [event.id]

        async def outbox_emptied() -> bool:
            doc = await db[SETTINGS].find_one({"_id": org})
            return doc is not None and not doc.get(OUTBOX) and OUTBOX_SINCE not in doc

        await eventually(outbox_emptied)
    finally:
        await mongo.close()


async def test_the_relay_and_the_expiry_sweeper_find_their_work_through_an_index(
    client: httpx.AsyncClient, content_settings: ContentSettings
) -> None:
    mongo = create_client(content_settings)
    db = mongo[content_settings.database_name("content")]
    try:
        for collection in OUTBOX_COLLECTIONS:
            explain = await db[collection].find(PENDING_FILTER).sort(OUTBOX_SINCE, 1).limit(200).explain()
            assert uses_an_index(explain), (collection, plan_stages(explain))
        for status in EXPIRING:
            explain = await db[CONTENT].find(expired_filter(status, datetime.now(UTC))).explain()
            assert uses_an_index(explain), (status, plan_stages(explain))
    finally:
        await mongo.close()


def revealed_author_pseudonym(tap: TopicTap, content_id: str) -> str:
    """The pseudonym of "ann" as the rejection of `content_id` carried it on the topic, checked to
    be hers by the tap's consumer-side reading."""
    [raw] = [
        r
        for r, e in zip(tap.raw, tap.seen, strict=True)
        if e.type == "chorus.content.rejected" and e.subject == content_id
    ]
    [seen] = [e for e in tap.seen if e.type == "chorus.content.rejected" and e.subject == content_id]
    assert isinstance(seen.data, ContentRejected) and seen.data.author_advocate_id == "ann"
    pseudonym = json.loads(raw.value)["data"]["author_advocate_id"]
    assert is_pseudonym(pseudonym)
    return str(pseudonym)
