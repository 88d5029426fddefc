"""Multi-document transactions and change streams: available for future use.

No code path uses them today (state and its events ride in one document, docs/DEVELOPING.md),
but MongoDB replica sets, the production shape, offer both, and the issue that replaced the
local store allows a path to use one where it is simpler. These tests say the local store
offers them the way MongoDB does, so such a path can be tested locally. Against a standalone
mongod (no replica set) they fail, as that server would fail such a path.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from shared.mongo import Document

WAIT_S = 30.0  # a bound on waiting for a change event, not a measurement


class Abandon(Exception):
    pass


async def test_a_transaction_commits_all_its_writes_together_available_for_future_use(
    client: AsyncMongoClient[Document], collection: AsyncCollection[Document]
) -> None:
    await collection.insert_many([{"_id": "alice", "balance": 100}, {"_id": "bob", "balance": 0}])
    async with client.start_session() as session, await session.start_transaction():
        await collection.update_one({"_id": "alice"}, {"$inc": {"balance": -30}}, session=session)
        await collection.update_one({"_id": "bob"}, {"$inc": {"balance": 30}}, session=session)
        await collection.insert_one({"_id": "transfer-1", "amount": 30}, session=session)
        # Not visible outside the transaction before it commits.
        assert await collection.find_one({"_id": "transfer-1"}) is None
        assert await collection.find_one({"_id": "alice"}) == {"_id": "alice", "balance": 100}
    assert await collection.find({}).sort("_id").to_list() == [
        {"_id": "alice", "balance": 70},
        {"_id": "bob", "balance": 30},
        {"_id": "transfer-1", "amount": 30},
    ]


async def test_an_aborted_transaction_leaves_nothing_available_for_future_use(
    client: AsyncMongoClient[Document], collection: AsyncCollection[Document]
) -> None:
    await collection.insert_one({"_id": "alice", "balance": 100})
    with pytest.raises(Abandon):
        async with client.start_session() as session, await session.start_transaction():
            await collection.update_one({"_id": "alice"}, {"$inc": {"balance": -30}}, session=session)
            await collection.insert_one({"_id": "transfer-1", "amount": 30}, session=session)
            raise Abandon
    assert await collection.find({}).to_list() == [{"_id": "alice", "balance": 100}]


async def test_concurrent_transactions_conserve_a_total_available_for_future_use(
    client: AsyncMongoClient[Document], collection: AsyncCollection[Document]
) -> None:
    # Transfers between two documents that conflict with each other: the driver retries a
    # transaction the server aborted for a write conflict, and no money appears or vanishes.
    await collection.insert_many([{"_id": "a", "balance": 1000}, {"_id": "b", "balance": 1000}])

    async def transfer(i: int) -> None:
        source, target = ("a", "b") if i % 2 else ("b", "a")

        async def move(session: AsyncClientSession) -> None:
            await collection.update_one({"_id": source}, {"$inc": {"balance": -i}}, session=session)
            await collection.update_one({"_id": target}, {"$inc": {"balance": i}}, session=session)
            await collection.insert_one({"_id": f"t{i}", "amount": i}, session=session)

        async with client.start_session() as session:
            await session.with_transaction(move)

    await asyncio.gather(*(transfer(i) for i in range(1, 21)))
    docs = {d["_id"]: d for d in await collection.find({}).to_list()}
    moved_to_b = sum(i for i in range(1, 21) if i % 2) - sum(i for i in range(1, 21) if not i % 2)
    assert docs["a"]["balance"] == 1000 - moved_to_b
    assert docs["b"]["balance"] == 1000 + moved_to_b
    assert sorted(k for k in docs if k.startswith("t")) == sorted(f"t{i}" for i in range(1, 21))


async def test_a_change_stream_delivers_inserts_and_updates_in_order_available_for_future_use(
    collection: AsyncCollection[Document],
) -> None:
    async with await collection.watch(full_document="updateLookup", max_await_time_ms=500) as stream:
        await collection.insert_one({"_id": "doc", "n": 1})
        await collection.update_one({"_id": "doc"}, {"$inc": {"n": 1}})
        changes: list[Document] = []
        deadline = time.monotonic() + WAIT_S
        while len(changes) < 2 and time.monotonic() < deadline:
            change = await stream.try_next()
            if change is not None:
                changes.append(change)
        resume_after = stream.resume_token
    assert [c["operationType"] for c in changes] == ["insert", "update"]
    assert changes[0]["fullDocument"] == {"_id": "doc", "n": 1}
    assert changes[0]["documentKey"] == {"_id": "doc"}
    assert changes[1]["updateDescription"]["updatedFields"] == {"n": 2}
    assert changes[1]["fullDocument"] == {"_id": "doc", "n": 2}

    # A consumer that stopped resumes after the last change it saw, and misses nothing.
    await collection.delete_one({"_id": "doc"})
    async with await collection.watch(resume_after=resume_after, max_await_time_ms=500) as stream:
        deadline = time.monotonic() + WAIT_S
        change = None
        while change is None and time.monotonic() < deadline:
            change = await stream.try_next()
    assert change is not None
    assert (change["operationType"], change["documentKey"]) == ("delete", {"_id": "doc"})
