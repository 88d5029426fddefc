"""TTL indexes expire documents: what replaces the sweepers (idempotency keys kept 24 hours).

The server removes expired documents in the background: MongoDB's TTL monitor runs every 60 s
(`ttlMonitorSleepSecs`), SecantusDB's sweeper every `ttl_sweep_seconds` (60 by default, 5 in the
local stack: devtools.local_stack.TTL_PASS_S). So this test waits for one pass: seconds on the
local stack, about a minute on MongoDB.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection

from shared.mongo import Document, IndexSpec, ensure_indexes

# Longer than one TTL pass plus its own work, on a busy machine: a bound on waiting, not a
# measurement.
PASS_WAIT_S = 150.0


async def test_a_ttl_index_removes_expired_documents_and_keeps_the_rest(
    collection: AsyncCollection[Document],
) -> None:
    keep_for = timedelta(hours=1)
    await ensure_indexes(
        collection.database,
        [
            IndexSpec(
                collection.name,
                [("created_at", ASCENDING)],
                options={"expireAfterSeconds": int(keep_for.total_seconds())},
            )
        ],
    )
    info = await collection.index_information()
    assert info["created_at_1"]["expireAfterSeconds"] == 3600
    now = datetime.now(UTC)
    await collection.insert_many(
        [
            {"_id": "expired", "created_at": now - keep_for - timedelta(minutes=5)},
            {"_id": "expired-long-ago", "created_at": now - timedelta(days=30)},
            # An array expires by its earliest date.
            {"_id": "expired-in-an-array", "created_at": [now, now - timedelta(days=2)]},
            {"_id": "fresh", "created_at": now},
            {"_id": "no-date", "created_at": "2020-01-01"},  # not a date: never expires
            {"_id": "no-field"},
        ]
    )
    expired = {"expired", "expired-long-ago", "expired-in-an-array"}
    deadline = time.monotonic() + PASS_WAIT_S
    while time.monotonic() < deadline:
        if not await collection.count_documents({"_id": {"$in": sorted(expired)}}):
            break
        await asyncio.sleep(1)
    left = sorted([str(d["_id"]) async for d in collection.find({}, {"_id": 1})])
    assert left == ["fresh", "no-date", "no-field"], f"after waiting up to {PASS_WAIT_S:.0f} s"
