"""The store contract: the MongoDB behaviour Chorus relies on, checked against a real server.

By default it runs against the local store of the session's test stack (SecantusDB, started by
the `stack` fixture). With CHORUS_CONTRACT_MONGO_URL=mongodb://... it runs against that server
instead (real MongoDB, say) and never starts the stack; only the tests that kill the server
are skipped then. Each session works in a database of its own and drops it at the end.

The client is built like the services' (tz_aware) with the driver's normal connection pool, and
it counts how many connections are in use at once, so a concurrency test can show that its
operations really ran side by side.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from shared.mongo import Document

URL_VARIABLE = "CHORUS_CONTRACT_MONGO_URL"


def external_url() -> str | None:
    """The server named by CHORUS_CONTRACT_MONGO_URL, or None for the local default."""
    return os.environ.get(URL_VARIABLE) or None


# For the tests that kill -9 the server: only the local default can be killed and restarted.
kills_the_server = pytest.mark.skipif(
    external_url() is not None,
    reason=f"kills the server, so it runs only against the local default store, not {URL_VARIABLE}",
)


def secantusdb_bug(bug: str, instead: str) -> pytest.MarkDecorator:
    """For a test of MongoDB behaviour that the local store gets wrong and that no Chorus path
    depends on any more: expected to fail on the local store, strictly (a SecantusDB that fixes
    it shows up as a failure to look at), and required to pass on CHORUS_CONTRACT_MONGO_URL."""
    return pytest.mark.xfail(
        external_url() is None,
        strict=True,
        reason=f"SecantusDB 0.5.3-beta.196 bug: {bug}; no Chorus path depends on it (see {instead})",
    )


class PoolWatch(monitoring.ConnectionPoolListener):
    """Counts connections checked out at once (the peak since the last reset)."""

    def __init__(self) -> None:
        self.in_use = 0
        self.peak = 0

    def reset(self) -> None:
        self.peak = self.in_use

    def connection_checked_out(self, event: monitoring.ConnectionCheckedOutEvent) -> None:
        self.in_use += 1
        self.peak = max(self.peak, self.in_use)

    def connection_checked_in(self, event: monitoring.ConnectionCheckedInEvent) -> None:
        self.in_use -= 1

    # The listener interface requires every event; only the two above matter here.
    def pool_created(self, event: Any) -> None: ...
    def pool_ready(self, event: Any) -> None: ...
    def pool_cleared(self, event: Any) -> None: ...
    def pool_closed(self, event: Any) -> None: ...
    def connection_created(self, event: Any) -> None: ...
    def connection_ready(self, event: Any) -> None: ...
    def connection_closed(self, event: Any) -> None: ...
    def connection_check_out_started(self, event: Any) -> None: ...
    def connection_check_out_failed(self, event: Any) -> None: ...


def new_client(url: str, *listeners: monitoring.ConnectionPoolListener) -> AsyncMongoClient[Document]:
    # As shared.mongo.create_client builds it, minus the settings: no maxPoolSize, so the
    # driver's default pool (100 connections) is what the operations share.
    return AsyncMongoClient(
        url,
        tz_aware=True,
        serverSelectionTimeoutMS=10_000,
        appname="chorus-store-contract",
        event_listeners=list(listeners),
    )


@pytest.fixture(scope="session")
def contract_url(request: pytest.FixtureRequest) -> str:
    url = external_url()
    if url is None:
        # Only now is the test stack started: an external URL needs none of it.
        return str(request.getfixturevalue("stack").mongo_url)
    if not url.startswith(("mongodb://", "mongodb+srv://")):
        raise pytest.UsageError(f"{URL_VARIABLE} must be a mongodb:// URL, not {url!r}")
    return url


@pytest.fixture(scope="session")
def pool_watch() -> PoolWatch:
    return PoolWatch()


@pytest.fixture(scope="session")
async def client(contract_url: str, pool_watch: PoolWatch) -> AsyncIterator[AsyncMongoClient[Document]]:
    mongo = new_client(contract_url, pool_watch)
    try:
        yield mongo
    finally:
        await mongo.close()


@pytest.fixture(scope="session")
async def db(client: AsyncMongoClient[Document]) -> AsyncIterator[AsyncDatabase[Document]]:
    """A database of this session's own, dropped at the end."""
    name = f"chorus_contract_{uuid.uuid4().hex[:12]}"
    try:
        yield client[name]
    finally:
        await client.drop_database(name)


@pytest.fixture
def collection(db: AsyncDatabase[Document]) -> AsyncCollection[Document]:
    """A fresh, empty collection for one test."""
    return db[f"c_{uuid.uuid4().hex[:12]}"]
