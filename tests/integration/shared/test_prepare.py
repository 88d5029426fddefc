"""`chorus-serve SERVICE --prepare` (deploy/k8s's initContainer), as a process on the real local
store: it builds every index the service declares and runs its migrations, then exits; again, it
finds them done; with no MongoDB it fails, so Kubernetes retries it instead of starting the
service."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from devtools import local_stack
from services.content.main import INDEXES, MIGRATIONS
from shared import idempotency, ratelimit
from shared.migrations import MIGRATIONS as RECORDED
from shared.mongo import Document, create_client
from shared.settings import ChorusSettings
from tests.ports import free_port

pytestmark = pytest.mark.integration

PREFIX = f"prep{uuid.uuid4().hex[:8]}"


def prepare(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared.serve", "content", "--prepare"],
        env={**os.environ, **env, "CHORUS_MONGO_DB_PREFIX": PREFIX},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
async def content_db(settings: ChorusSettings) -> AsyncIterator[AsyncDatabase[Document]]:
    client = create_client(settings)
    db = client[settings.model_copy(update={"mongo_db_prefix": PREFIX}).database_name("content")]
    try:
        yield db
    finally:
        await client.drop_database(db.name)
        await client.close()


async def test_prepare_builds_the_indexes_and_runs_the_migrations_then_exits(
    stack: local_stack.StackConfig, content_db: AsyncDatabase[Document]
) -> None:
    first = prepare(stack.env())

    assert first.returncode == 0, first.stderr
    for spec in [*INDEXES, *idempotency.INDEXES, *ratelimit.INDEXES]:
        built = {index["name"]: index async for index in await content_db[spec.collection].list_indexes()}
        index = built.get(spec.model().document["name"])
        assert index is not None, f"{spec.collection}: {spec.keys} not built"
        assert list(index["key"].items()) == spec.keys
        assert bool(index.get("unique")) == spec.unique
    recorded = {doc["_id"] async for doc in content_db[RECORDED].find({})}
    assert recorded == {m.name for m in MIGRATIONS}
    assert all(f"migration {m.name} done" in first.stderr for m in MIGRATIONS)
    assert "indexes and migrations done" in first.stderr

    again = prepare(stack.env())
    assert again.returncode == 0, again.stderr
    assert "migration " not in again.stderr  # none ran twice
    assert {doc["_id"] async for doc in content_db[RECORDED].find({})} == recorded


def test_prepare_without_mongodb_fails_instead_of_reporting_done(stack: local_stack.StackConfig) -> None:
    no_store = prepare({**stack.env(), "CHORUS_MONGO_URL": f"mongodb://127.0.0.1:{free_port()}/"})

    assert no_store.returncode != 0
    assert "ServerSelectionTimeoutError" in no_store.stderr
    assert "indexes and migrations done" not in no_store.stderr
