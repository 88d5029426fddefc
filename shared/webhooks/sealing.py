"""Webhook secrets at rest: sealed (Fernet: AES-128-CBC and HMAC-SHA256) with the first key of
CHORUS_WEBHOOK_SECRET_KEYS, opened with any of them, so the key can be rotated:

1. put a new key first in the list (keep the old one after it) and deploy: new secrets are sealed
   with it, every stored one still opens;
2. at its next start each service reseals what it stores under the new key (`reseal`, a
   migration named by the key's fingerprint, so it runs once per key);
3. then drop the old key.

A secret stored before sealing existed (no prefix) still opens as it is, and is sealed by the
same migration.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pymongo.asynchronous.database import AsyncDatabase

from shared.migrations import Migration
from shared.mongo import Document
from shared.settings import DEV_WEBHOOK_SECRET_KEY, ChorusSettings
from shared.tenancy import Tenants

PREFIX = "sealed:"


class SecretBox:
    @classmethod
    def of(cls, settings: ChorusSettings) -> SecretBox:
        keys = settings.webhook_secret_keys
        if settings.environment == "prod" and DEV_WEBHOOK_SECRET_KEY in keys:
            raise ValueError("CHORUS_WEBHOOK_SECRET_KEYS must not hold the development key in prod")
        return cls(keys)

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("CHORUS_WEBHOOK_SECRET_KEYS needs at least one key")
        self._primary = Fernet(keys[0])
        self._all = MultiFernet([Fernet(key) for key in keys])
        self.fingerprint = hashlib.sha256(keys[0].encode()).hexdigest()[:12]

    def seal(self, secret: str) -> str:
        return PREFIX + self._primary.encrypt(secret.encode()).decode()

    def open(self, stored: str) -> str:
        if not stored.startswith(PREFIX):
            return stored  # stored before secrets were sealed
        try:
            return self._all.decrypt(stored.removeprefix(PREFIX).encode()).decode()
        except InvalidToken as exc:
            raise ValueError(
                "a webhook secret sealed with a key no longer in CHORUS_WEBHOOK_SECRET_KEYS"
            ) from exc

    def is_current(self, stored: str) -> bool:
        """Sealed with the first key (nothing to reseal)."""
        if not stored.startswith(PREFIX):
            return False
        try:
            self._primary.decrypt(stored.removeprefix(PREFIX).encode())
        except InvalidToken:
            return False
        return True


def reseal(collection: str, box: SecretBox) -> Migration:
    """Seal every `secret` of `collection` with the box's first key: once per key (the
    migration's name holds its fingerprint), so adding a key first reseals what is stored."""

    async def run(db: AsyncDatabase[Document]) -> int:
        tenants = Tenants(db)
        stored = tenants.across(collection, why="resealing every org's webhook secrets")
        resealed = 0
        async for doc in stored.find({"secret": {"$type": "string"}}, {"org": 1, "secret": 1}):
            if not box.is_current(doc["secret"]):
                sealed = box.seal(box.open(doc["secret"]))
                await tenants.of(doc["org"], collection).update_one(
                    {"_id": doc["_id"], "secret": doc["secret"]}, {"$set": {"secret": sealed}}
                )
                resealed += 1
        return resealed

    return Migration(f"reseal-webhook-secrets-{collection}-{box.fingerprint}", run)
