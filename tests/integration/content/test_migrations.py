"""At its start the content service runs its migrations once: the indexes of the outbox it had
before shared/outbox.py, which nothing reads but every write still paid for, are dropped."""

from __future__ import annotations

import uuid

import pytest
from pymongo import ASCENDING

from services.content.main import MIGRATIONS, create_app
from services.content.settings import ContentSettings
from shared.mongo import create_client
from shared.settings import ChorusSettings
from tests.helpers import running_app

pytestmark = pytest.mark.integration

OLD_OUTBOX_INDEXED = ("content", "settings", "policies", "course_progress", "policy_acks")


async def test_the_old_outbox_indexes_are_dropped_once_at_start(settings: ChorusSettings) -> None:
    content_settings = ContentSettings(
        **{**settings.model_dump(), "mongo_db_prefix": f"{settings.mongo_db_prefix}m{uuid.uuid4().hex[:6]}"}
    )
    mongo = create_client(content_settings)
    db = mongo[content_settings.database_name("content")]
    try:
        for collection in OLD_OUTBOX_INDEXED:  # as the earlier version left them
            await db[collection].create_index([("outbox_pending", ASCENDING)], sparse=True)
        async with running_app(create_app(content_settings)):
            pass
        for collection in OLD_OUTBOX_INDEXED:
            names = {i["name"] async for i in await db[collection].list_indexes()}
            assert "outbox_pending_1" not in names and "outbox_pending" in names, collection
        recorded = {d["_id"] async for d in db["migrations"].find({})}
        assert recorded == {m.name for m in MIGRATIONS}
    finally:
        await mongo.drop_database(db.name)
        await mongo.close()
