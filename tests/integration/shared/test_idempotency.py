"""Idempotency keys on the real local store: a second request while the first runs, and the
records' expiry through their TTL index."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from shared import idempotency
from shared.errors import Conflict, InvalidInput
from shared.ids import KEY_LIFETIME
from shared.mongo import Document, create_client, ensure_indexes, writes_over_after
from shared.settings import ChorusSettings

pytestmark = pytest.mark.integration

# MongoDB's TTL monitor runs every 60 s (ttlMonitorSleepSecs), the local store's every few
# seconds (devtools.local_stack.TTL_PASS_S): an expired record is gone by the next pass. The
# wait allows MongoDB's, for a run against an external stack.
MONGODB_TTL_PASS_S = 60
TTL_INDEX = "created_at_1"
# When a running key counts as abandoned, by the default settings' request deadline.
ABANDONED = writes_over_after(ChorusSettings())


@pytest.fixture
async def db(settings: ChorusSettings) -> AsyncIterator[AsyncDatabase[Document]]:
    client = create_client(settings)
    name = settings.database_name(f"idempotency_{uuid.uuid4().hex[:8]}")
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


def created(response: dict[str, Any]) -> Any:
    async def create() -> dict[str, Any]:
        return response

    return create


async def run(
    db: AsyncDatabase[Document], key: str, body: Any, create: Callable[[], Awaitable[dict[str, Any]]]
) -> tuple[dict[str, Any], bool]:
    """run_once in org-1's scope `tests`, abandoning a key by the default settings' deadline."""
    return await idempotency.run_once(
        db, org="org-1", scope="tests", key=key, body=body, create=create, abandoned=ABANDONED
    )


async def test_a_second_request_while_the_first_runs_is_told_when_to_retry(
    db: AsyncDatabase[Document],
) -> None:
    """A double-click: the second request with the key gets a 409 with Retry-After while the first
    is running, creates nothing, and once the first is done gets its answer again."""
    started, release = asyncio.Event(), asyncio.Event()
    runs = 0

    async def slow_create() -> dict[str, Any]:
        nonlocal runs
        runs += 1
        started.set()
        await release.wait()
        return {"id": "made-once"}

    first = asyncio.create_task(run(db, "k", {"n": 1}, slow_create))
    await started.wait()
    with pytest.raises(Conflict) as in_flight:
        await run(db, "k", {"n": 1}, slow_create)
    assert in_flight.value.headers == {"Retry-After": str(idempotency.IN_FLIGHT_RETRY_AFTER_S)}
    with pytest.raises(InvalidInput):  # another body under the key is refused, running or not
        await run(db, "k", {"n": 2}, slow_create)
    release.set()
    assert await first == ({"id": "made-once"}, False)
    assert await run(db, "k", {"n": 1}, slow_create) == ({"id": "made-once"}, True)
    assert runs == 1


async def test_a_key_its_request_abandoned_is_taken_over_once_that_request_can_no_longer_write(
    db: AsyncDatabase[Document],
) -> None:
    """A request that died (its process stopped, or MongoDB was out past its deadline) left its
    key running. The client's retry with the key ran again after the deadline, where it got a 409
    for the key's 24 hours."""
    keys = db[idempotency.COLLECTION]
    now = datetime.now(UTC)
    for key, age, lapse in (
        # Claims written before claims said when they lapse: by this replica's deadline.
        ("died", ABANDONED + timedelta(seconds=1), None),
        ("running", ABANDONED - timedelta(seconds=2), None),
        # Claimed by replicas with a shorter and a longer deadline than this one's.
        ("died-sooner", timedelta(seconds=3), timedelta(seconds=2)),
        ("running-longer", ABANDONED + timedelta(seconds=1), ABANDONED * 2),
    ):
        claim = {
            "_id": f"org-1:tests:{key}",
            "org": "org-1",
            "fingerprint": idempotency.fingerprint({"n": 1}),
            "state": "running",
            "created_at": now - age,
        }
        if lapse is not None:
            claim["abandoned_at"] = now - age + lapse
        await keys.insert_one(claim)

    def retry(key: str, body: Any) -> Any:
        return run(db, key, body, created({"n": key}))

    for running in ("running", "running-longer"):
        with pytest.raises(Conflict):  # its request may still write
            await retry(running, {"n": 1})
    assert await retry("died-sooner", {"n": 1}) == ({"n": "died-sooner"}, False)
    with pytest.raises(InvalidInput):  # abandoned or not, the key is the first body's
        await retry("died", {"n": 2})
    assert await retry("died", {"n": 1}) == ({"n": "died"}, False)
    assert await retry("died", {"n": 1}) == ({"n": "died"}, True)


async def test_a_key_older_than_a_day_expires_and_a_fresh_one_stays(db: AsyncDatabase[Document]) -> None:
    await ensure_indexes(db, idempotency.INDEXES)
    keys = db[idempotency.COLLECTION]
    # A key used just over a day ago (its record as run_once leaves it), and one used now.
    old_at = datetime.now(UTC) - KEY_LIFETIME - timedelta(minutes=1)
    await keys.insert_one(
        {
            "_id": "org-1:tests:old",
            "org": "org-1",
            "fingerprint": idempotency.fingerprint({"n": 1}),
            "state": "done",
            "response": {"n": "first"},
            "created_at": old_at,
        }
    )
    await run(db, "new", {"n": 2}, created({"n": "new"}))

    deadline = time.monotonic() + MONGODB_TTL_PASS_S + 15
    while await keys.find_one({"_id": "org-1:tests:old"}) is not None:
        assert time.monotonic() < deadline, "the expired record outlived a pass of the TTL monitor"
        await asyncio.sleep(1.0)
    assert await keys.find_one({"_id": "org-1:tests:new"}) is not None

    # Its key is free again: the same request runs anew instead of replaying the old response.
    response, replayed = await run(db, "old", {"n": 1}, created({"n": "again"}))
    assert (response, replayed) == ({"n": "again"}, False)


async def test_an_index_made_without_its_ttl_gets_it(db: AsyncDatabase[Document]) -> None:
    """A database from before the TTL index has a plain index of the same name: it is changed in
    place, and ensuring the indexes again changes nothing."""
    keys = db[idempotency.COLLECTION]
    await keys.create_index([("created_at", 1)], name=TTL_INDEX)
    await ensure_indexes(db, idempotency.INDEXES)
    await ensure_indexes(db, idempotency.INDEXES)
    index = (await keys.index_information())[TTL_INDEX]
    assert index["expireAfterSeconds"] == KEY_LIFETIME.total_seconds()
