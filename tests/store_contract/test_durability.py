"""Acknowledged writes survive the server being killed (kill -9) and restarted.

The services write with the default write concern. On a MongoDB replica set (5.0 on, the
production shape) that default is `w: "majority"`, which also waits for the journal
(`writeConcernMajorityJournalDefault`), so an acknowledged write outlives a crash of the
process. The local store answers as a replica set too, so it is held to the same.

Runs a private SecantusDB, started by the local stack's own code (devtools/local_stack.py) on free
ports with a data directory of its own, so the shared test stack is never killed. Each write
concern gets a fresh server: a journaled write flushes the journal, which could save earlier
unjournaled writes and hide their loss.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient, WriteConcern
from pymongo.errors import PyMongoError

from devtools import local_stack
from shared.mongo import Document
from tests.ports import free_ports
from tests.store_contract.conftest import kills_the_server, new_client

WRITES = 1000
WRITERS = 20  # writes run side by side on the pool, as services write
STOP_WAIT_S = 10.0  # a bound on waiting for the killed process to be gone


def private_stack(state_dir: Path) -> local_stack.StackConfig:
    # Only SecantusDB is started; the other ports are never bound but must differ.
    mongo, *others = free_ports(6)
    return local_stack.StackConfig(
        state_dir=state_dir,
        mongo_port=mongo,
        kafka_port=others[0],
        kafka_controller_port=others[1],
        otlp_grpc_port=others[2],
        otlp_http_port=others[3],
        jaeger_ui_port=others[4],
    )


def store_pid(config: local_stack.StackConfig) -> int | None:
    [part] = [p for p in local_stack.status(config) if p.name == "secantusdb"]
    return part.pid


def wait_gone(config: local_stack.StackConfig) -> None:
    deadline = time.monotonic() + STOP_WAIT_S
    while store_pid(config) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert store_pid(config) is None, "the killed SecantusDB still runs"


@dataclass
class Acknowledged:
    inserts: set[str] = field(default_factory=set)
    increments: int = 0


async def write_until_killed(config: local_stack.StackConfig, write_concern: WriteConcern) -> Acknowledged:
    """Inserts, each followed by an increment of one counter, from WRITERS writers at once; the
    server is killed the moment WRITES inserts are acknowledged, while other writes are still
    in flight, so the newest acknowledged writes have had no time to reach the disk by luck."""
    pid = store_pid(config)
    assert pid is not None, "the private SecantusDB is not running"
    # No retries: a write cut off by the kill fails at once instead of waiting for the server.
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        config.mongo_url, tz_aware=True, retryWrites=False, serverSelectionTimeoutMS=2000
    )
    done = Acknowledged()
    killed = False
    numbers = itertools.count()
    try:
        collection = client["durability"].get_collection("writes", write_concern=write_concern)
        await collection.insert_one({"_id": "counter", "n": 0})

        async def writer() -> None:
            nonlocal killed
            while not killed:
                doc_id = f"w{next(numbers):05d}"
                try:
                    await collection.insert_one({"_id": doc_id})
                    done.inserts.add(doc_id)
                    await collection.update_one({"_id": "counter"}, {"$inc": {"n": 1}})
                    done.increments += 1
                except PyMongoError:
                    if killed:
                        return  # cut off by the kill: not acknowledged, so not counted
                    raise
                if len(done.inserts) >= WRITES and not killed:
                    killed = True
                    os.kill(pid, signal.SIGKILL)

        await asyncio.gather(*(writer() for _ in range(WRITERS)))
    finally:
        await client.close()
    await asyncio.to_thread(wait_gone, config)
    return done


@kills_the_server
@pytest.mark.parametrize(
    "write_concern",
    [WriteConcern(), WriteConcern(w="majority"), WriteConcern(j=True)],
    ids=["default write concern", "w=majority", "journaled (j=true)"],
)
async def test_acknowledged_writes_survive_kill_9(tmp_path: Path, write_concern: WriteConcern) -> None:
    config = private_stack(tmp_path / "stack")
    await asyncio.to_thread(local_stack.start_part, "secantusdb", config)
    try:
        acknowledged = await write_until_killed(config, write_concern)
        await asyncio.to_thread(local_stack.start_part, "secantusdb", config)
        client = new_client(config.mongo_url)
        try:
            stored = {d["_id"]: d async for d in client["durability"]["writes"].find({})}
        finally:
            await client.close()
    finally:
        await asyncio.to_thread(local_stack.stop, config)
    assert len(acknowledged.inserts) >= WRITES
    lost = sorted(acknowledged.inserts - set(stored))
    assert not lost, f"{len(lost)} of {len(acknowledged.inserts)} acknowledged inserts lost, e.g. {lost[-5:]}"
    counted = stored.get("counter", {}).get("n", 0)
    # At least every acknowledged increment; one cut off by the kill may have been applied too.
    assert counted >= acknowledged.increments, f"the counter says {counted} of {acknowledged.increments}"
