"""Webhook secrets are sealed at rest: what MongoDB holds does not show them, stored ones are
sealed at start, and a new key reseals them all once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from cryptography.fernet import Fernet
from pymongo.asynchronous.database import AsyncDatabase

from services.recognition.rewards.store import WEBHOOKS, RewardStore
from shared.migrations import migrate
from shared.mongo import Document
from shared.settings import ChorusSettings
from shared.webhooks.sealing import SecretBox, reseal
from tests.helpers import scratch_database

pytestmark = pytest.mark.integration

OLD_KEY, NEW_KEY = Fernet.generate_key().decode(), Fernet.generate_key().decode()


@pytest.fixture
async def db(settings: ChorusSettings) -> AsyncIterator[AsyncDatabase[Document]]:
    async with scratch_database(settings, "webhook_secrets") as db:
        yield db


async def stored_secrets(db: AsyncDatabase[Document]) -> dict[str, str]:
    return {d["_id"]: d["secret"] async for d in db[WEBHOOKS].find({})}


async def test_secrets_are_sealed_at_rest_and_resealed_once_per_new_key(db: AsyncDatabase[Document]) -> None:
    at = datetime.now(UTC)
    await db[WEBHOOKS].insert_one(
        {"_id": "org-a", "org": "org-a", "url": "https://a.example/h", "secret": "plain-a"}
    )
    old = SecretBox([OLD_KEY])
    await RewardStore(db, old).set_webhook("org-b", "https://b.example/h", "whsec_b", at)
    assert "whsec_b" not in str(await stored_secrets(db))

    # At start: what was stored in clear is sealed.
    assert await migrate(db, [reseal(WEBHOOKS, old)]) == [
        f"reseal-webhook-secrets-{WEBHOOKS}-{old.fingerprint}"
    ]
    sealed_old = await stored_secrets(db)
    assert all(old.is_current(s) for s in sealed_old.values()) and "plain-a" not in str(sealed_old)

    # A new key first: everything opens at once, and the next start reseals it all under the new key.
    rotated = SecretBox([NEW_KEY, OLD_KEY])
    store = RewardStore(db, rotated)
    assert [(await store.webhook(o)).secret for o in ("org-a", "org-b")] == ["plain-a", "whsec_b"]  # type: ignore[union-attr]
    await migrate(db, [reseal(WEBHOOKS, old), reseal(WEBHOOKS, rotated)])
    assert all(rotated.is_current(s) for s in (await stored_secrets(db)).values())

    # The old key can then go.
    only_new = RewardStore(db, SecretBox([NEW_KEY]))
    assert (await only_new.webhook("org-b")).secret == "whsec_b"  # type: ignore[union-attr]
