"""The metrics stores on the real local store, with several connection pools writing at once (as
several projector processes do): concurrent updates of one document are exact, and a member
that still applies a partition it lost counts nothing twice."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from services.metrics.attribution.domain import Touch
from services.metrics.attribution.store import AttributionStore
from services.metrics.org_settings.domain import EmvRates, OrgSettings
from services.metrics.org_settings.store import OrgSettingsStore
from services.metrics.projections import domain
from services.metrics.projections.store import ProjectionStore
from shared.mongo import Document, create_client
from shared.settings import ChorusSettings
from tests.helpers import Pending, new_org, tally_of

pytestmark = pytest.mark.integration

DAY = "2026-11-02"
POOLS = 4  # as many processes, each with the driver's normal pool


COLLECTION = f"stats_t{uuid.uuid4().hex[:8]}"  # a stats generation of this module's own


@pytest.fixture
async def dbs(settings: ChorusSettings) -> AsyncIterator[list[AsyncDatabase[Document]]]:
    """The metrics database over separate clients."""
    clients = [create_client(settings) for _ in range(POOLS)]
    dbs = [client[settings.database_name("metrics")] for client in clients]
    try:
        yield dbs
    finally:
        await dbs[0][COLLECTION].drop()
        for client in clients:
            await client.close()


@pytest.fixture
def stores(dbs: list[AsyncDatabase[Document]]) -> list[ProjectionStore]:
    return [ProjectionStore(db) for db in dbs]


def clicks_of(org: str, advocate: str, source: str, offsets: range) -> list[Pending]:
    effect = domain.Effect(org, DAY, (("all", "*"), ("advocate", advocate)), (("clicks", 1),))
    return [Pending(effect, source, offset, f"{source}-{offset}") for offset in offsets]


async def counted(store: ProjectionStore, org: str, dim: str) -> int:
    return sum(row.get("clicks", 0) for row in await store.stats_docs(COLLECTION, org, dim, DAY, DAY))


async def test_many_concurrent_writers_of_one_document_lose_no_increment(
    stores: list[ProjectionStore],
) -> None:
    """40 partitions, each applying its 10 batches in order, all at once through 4 pools: 800
    `$inc` updates of the same two documents (the day's totals and its breakdowns)."""
    org = new_org()
    partitions, batches, per_batch = 40, 10, 5

    async def partition(p: int) -> None:
        store = stores[p % POOLS]
        for b in range(batches):
            offsets = range(b * per_batch, (b + 1) * per_batch)
            tally = tally_of(clicks_of(org, "alice", f"c_{p}", offsets))
            await store.apply(COLLECTION, tally.days.values())

    await asyncio.gather(*(partition(p) for p in range(partitions)))
    expected = partitions * batches * per_batch
    assert (await counted(stores[0], org, "all"), await counted(stores[0], org, "advocate")) == (
        expected,
        expected,
    )


async def test_two_members_applying_one_partition_at_once_count_each_record_once(
    stores: list[ProjectionStore],
) -> None:
    """After a rebalance, the member that lost a partition may still apply its last polls while
    the new owner applies the same records in other batches: the compare-and-set on the
    partition's watermark lets each record count once, whatever the interleaving."""
    org = new_org()
    records = 300

    async def member(store: ProjectionStore, seed: int) -> None:
        rng = random.Random(seed)
        offset = 0
        while offset < records:
            size = rng.randint(1, 25)
            tally = tally_of(clicks_of(org, "bob", "c_0", range(offset, min(offset + size, records))))
            await store.apply(COLLECTION, tally.days.values())
            offset += size

    await asyncio.gather(*(member(store, seed) for seed, store in enumerate(stores)))
    assert (await counted(stores[0], org, "all"), await counted(stores[0], org, "advocate")) == (
        records,
        records,
    )


async def test_any_team_is_counted_and_read_back_as_it_was_given(stores: list[ProjectionStore]) -> None:
    # A value becomes a field name; MongoDB refuses a NUL in one, and a dot or a leading $ would
    # be read as a path or an operator (encode_key).
    org, store = new_org(), stores[0]
    teams = ["x\0y", "v1.2", "$eng", "50%"]
    effects = [domain.Effect(org, DAY, (("team", team),), (("clicks", 1),)) for team in teams]
    tally = tally_of(Pending(effect, "c_0", n, f"e{n}") for n, effect in enumerate(effects))
    await store.apply(COLLECTION, tally.days.values())
    rows = await store.stats_docs(COLLECTION, org, "team", DAY, DAY)
    assert sorted((row["key"], row["clicks"]) for row in rows) == sorted((team, 1) for team in teams)
    filtered = await store.stats_docs(COLLECTION, org, "team", DAY, DAY, keys=["x\0y"])
    assert [(row["key"], row["clicks"]) for row in filtered] == [("x\0y", 1)]


async def test_erasing_an_advocate_removes_only_their_touches(dbs: list[AsyncDatabase[Document]]) -> None:
    store, org = AttributionStore(dbs[0]), new_org()
    now = datetime.now(UTC)
    touches = [Touch(f"c{i}", advocate, f"s{i}", now) for i, advocate in enumerate(["alice", "bob", "alice"])]
    for touch in touches:
        await store.add_customer_touch(org, "cust-1", touch)
    await store.add_customer_touch(org, "cust-2", touches[0])
    await store.erase_customer_touches(org, "alice")
    assert [t.click_id for t in await store.customer_touches(org, "cust-1")] == ["c1"]
    assert await store.customer_touches(org, "cust-2") == []


async def test_settings_written_at_once_for_a_new_organisation_make_one_document(
    dbs: list[AsyncDatabase[Document]],
) -> None:
    # The settings API and the chorus.settings.updated consumer both write them, from any replica.
    org = new_org()
    stores = [OrgSettingsStore(db) for db in dbs]
    rates = EmvRates(Decimal("0.5"), Decimal("12"), "EUR")
    await asyncio.gather(
        *(
            store.set_rates(org, rates) if i % 2 else store.set_program_settings(org, 14, "Asia/Kolkata")
            for i, store in enumerate(stores)
        )
    )
    assert await stores[0].get(org) == OrgSettings(org, rates, 14, "Asia/Kolkata")
    assert await dbs[0]["org_settings"].count_documents({"org": org}) == 1
