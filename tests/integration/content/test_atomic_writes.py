"""Course progress with many writers at once, each through its own client (its own connection
pool), as several replicas of content serve one advocate's completions: each completion gets the
progress as its own write left it, also while the first completions race to create it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from services.content.training.store import INDEXES, TrainingStore
from shared.settings import ChorusSettings
from tests.helpers import new_org, one_database_through_clients

pytestmark = pytest.mark.integration

CLIENTS = 4


@pytest.fixture(scope="module")
async def stores(settings: ChorusSettings) -> AsyncIterator[list[TrainingStore]]:
    """The content store over CLIENTS separate clients of one database of this module's own."""
    database = f"{settings.mongo_db_prefix}_content_atomic_writes"
    async with one_database_through_clients(settings, database, INDEXES, CLIENTS) as dbs:
        yield [TrainingStore(db) for db in dbs]


async def test_modules_completed_at_once_each_see_their_own_completion(stores: list[TrainingStore]) -> None:
    org = new_org()
    modules = [f"m{i:02d}" for i in range(24)]
    for advocate in ("ada", "bob", "cy", "di", "ed"):  # a lost race shows only sometimes
        progresses = await asyncio.gather(
            *(
                stores[i % CLIENTS].complete_module(org, "course", advocate, module)
                for i, module in enumerate(modules)
            )
        )
        # Each saw its own module, and as many as had been added up to its own write: one each
        # of 1..24, so exactly one completion saw the course complete.
        assert all(module in p.completed_module_ids for module, p in zip(modules, progresses, strict=True))
        assert sorted(len(p.completed_module_ids) for p in progresses) == list(range(1, len(modules) + 1))
        stored = await stores[0].get_progress(org, "course", advocate)
        assert stored is not None and sorted(stored.completed_module_ids) == modules


async def test_one_module_completed_again_and_again_at_once_is_completed_once(
    stores: list[TrainingStore],
) -> None:
    org = new_org()
    progresses = await asyncio.gather(
        *(stores[i % CLIENTS].complete_module(org, "course", "ada", "m1") for i in range(20))
    )
    assert [p.completed_module_ids for p in progresses] == [["m1"]] * 20
    assert await stores[0].get_progress(org, "course", "ada") == progresses[0]
