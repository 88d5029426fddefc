"""At its start the content service runs its migrations once: events left pending in the outbox
it had before shared/outbox.py (serialised CloudEvents under an `outbox_pending` flag) are
adopted and sent, and that outbox's indexes, which nothing reads any more, are dropped."""

from __future__ import annotations

import uuid

import pytest
from pymongo import ASCENDING

from services.content.main import MIGRATIONS, create_app
from services.content.settings import ContentSettings
from shared.events import Event
from shared.events.content import ContentArchived
from shared.events.topics import CONTENT
from shared.messaging import ensure_topics
from shared.mongo import create_client
from shared.outbox import OUTBOX, OUTBOX_SINCE
from shared.settings import ChorusSettings
from tests.helpers import eventually, running_app, tap

pytestmark = pytest.mark.integration

OLD_OUTBOX_INDEXED = ("content", "settings", "policies", "course_progress", "policy_acks")


async def test_the_old_outbox_is_adopted_and_sent_and_its_indexes_dropped_once(
    settings: ChorusSettings,
) -> None:
    content_settings = ContentSettings(
        **{**settings.model_dump(), "mongo_db_prefix": f"{settings.mongo_db_prefix}m{uuid.uuid4().hex[:6]}"}
    )
    mongo = create_client(content_settings)
    db = mongo[content_settings.database_name("content")]
    org = f"org-{uuid.uuid4().hex[:8]}"
    left = Event.create(
        ContentArchived(content_id="c1", reason="expired"), tenant=org, source="/chorus/content"
    )
    try:
        # As the earlier version left them: its indexes, and an event it had not sent yet.
        for collection in OLD_OUTBOX_INDEXED:
            await db[collection].create_index([("outbox_pending", ASCENDING)], sparse=True)
        await db["content"].insert_one(
            {"_id": "c1", "org": org, "outbox": [left.to_json_bytes().decode()], "outbox_pending": True}
        )
        await ensure_topics(settings.kafka_bootstrap)
        async with (
            tap(settings, CONTENT.name) as content_tap,
            running_app(create_app(content_settings)),
        ):
            [sent] = await content_tap.collect(lambda e: e.id == left.id, count=1, timeout_s=30)

            async def emptied() -> bool:
                doc = await db["content"].find_one({"_id": "c1"}) or {}
                return not doc.get(OUTBOX) and OUTBOX_SINCE not in doc and "outbox_pending" not in doc

            await eventually(emptied)
        assert sent.data == left.data
        for collection in OLD_OUTBOX_INDEXED:
            names = {i["name"] async for i in await db[collection].list_indexes()}
            assert "outbox_pending_1" not in names and "outbox_pending" in names, collection
        recorded = {d["_id"] async for d in db["migrations"].find({})}
        assert recorded == {m.name for m in MIGRATIONS}
    finally:
        await mongo.drop_database(db.name)
        await mongo.close()
