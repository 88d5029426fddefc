"""Training documents written before a field was kept read back with that field's default, as
the store read them when it mapped them by hand: no migration fills them in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from services.content.training.domain import Course, Module, Progress
from services.content.training.store import COURSE_PROGRESS, COURSES, INDEXES, TrainingStore
from shared.mongo import Document
from shared.settings import ChorusSettings
from tests.helpers import new_org, scratch_database

pytestmark = pytest.mark.integration

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
async def db(settings: ChorusSettings) -> AsyncIterator[AsyncDatabase[Document]]:
    async with scratch_database(settings, "content_older_documents", INDEXES) as db:
        yield db


async def test_a_course_without_a_description_nor_module_bodies_and_urls_reads_them_as_none(
    db: AsyncDatabase[Document],
) -> None:
    org = new_org()
    await db[COURSES].insert_one(
        {
            "_id": "c1",
            "org": org,
            "title": "Sharing well",
            "modules": [{"id": "m1", "title": "Why", "minutes": 5}],
            "created_by": "admin",
            "created_at": AT,
            "updated_at": AT,
            "version": 1,
        }
    )

    course = await TrainingStore(db).get_course(org, "c1")

    assert course == Course(
        "c1", org, "Sharing well", None, [Module("m1", "Why", None, None, 5)], "admin", AT, AT
    )


async def test_a_progress_without_modules_nor_completion_reads_as_none_done(
    db: AsyncDatabase[Document],
) -> None:
    org = new_org()
    await db[COURSE_PROGRESS].insert_one(
        {"_id": f"{org}:c1:ada", "org": org, "course_id": "c1", "advocate_id": "ada"}
    )

    progress = await TrainingStore(db).get_progress(org, "c1", "ada")

    assert progress == Progress("c1", "ada", [], None)
