"""The daily share limit with many writers at once, each through its own client (its own
connection pool), as several replicas of sharing take shares: the limit is one conditional update
of the day's document, and every answer below is exact, also while the day's first shares race to
create that document."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from services.sharing.shares.store import DAILY_COUNTS, INDEXES, SharesStore
from shared.settings import ChorusSettings
from tests.helpers import new_org, one_database_through_clients

pytestmark = pytest.mark.integration

CLIENTS = 4
DAY = "2026-12-05"


@pytest.fixture(scope="module")
async def stores(settings: ChorusSettings) -> AsyncIterator[list[SharesStore]]:
    """The sharing store over CLIENTS separate clients of one database of this module's own."""
    database = f"{settings.mongo_db_prefix}_sharing_atomic_writes"
    async with one_database_through_clients(settings, database, INDEXES, CLIENTS) as dbs:
        yield [SharesStore(db) for db in dbs]


async def reserve_at_once(
    stores: list[SharesStore], org: str, n: int, limit: int | None, day: str = DAY
) -> list[bool]:
    return await asyncio.gather(
        *(stores[i % len(stores)].reserve_daily_share(org, "a", day, limit) for i in range(n))
    )


async def counted(store: SharesStore, org: str, day: str = DAY) -> int:
    doc = await store.tenants.db[DAILY_COUNTS].find_one({"_id": f"{org}:a:{day}"})
    return 0 if doc is None else int(doc["count"])


async def test_the_first_shares_of_a_day_take_exactly_the_daily_limit(stores: list[SharesStore]) -> None:
    org = new_org()
    for day in ("2026-12-01", "2026-12-02", "2026-12-03", "2026-12-04", "2026-12-05"):
        # A lost race shows only sometimes: each day is a race of its own.
        admitted = await reserve_at_once(stores, org, 40, 5, day)
        assert admitted.count(True) == 5, day
        assert await counted(stores[0], org, day) == 5
        assert not await stores[1].reserve_daily_share(org, "a", day, 5)


async def test_shares_released_under_the_limit_are_taken_again_exactly(stores: list[SharesStore]) -> None:
    org = new_org()
    await reserve_at_once(stores, org, 5, 5)
    await asyncio.gather(*(store.release_daily_share(org, "a", DAY) for store in stores[:2]))
    admitted = await reserve_at_once(stores, org, 40, 5)
    assert admitted.count(True) == 2
    assert await counted(stores[0], org) == 5


async def test_without_a_limit_every_share_is_counted(stores: list[SharesStore]) -> None:
    org = new_org()
    assert all(await reserve_at_once(stores, org, 40, None))
    assert await counted(stores[0], org) == 40
