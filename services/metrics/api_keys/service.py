"""Use cases of the API keys: create, list, revoke, and resolve a caller's key."""

from __future__ import annotations

from dataclasses import dataclass

from services.metrics.api_keys.store import ApiKey, ApiKeyStore
from shared.auth import Principal, api_key_matches, generate_api_key
from shared.clock import Clock, utc_now
from shared.errors import NotFound


@dataclass(eq=False)
class ApiKeyService:
    store: ApiKeyStore
    clock: Clock = utc_now

    async def resolve(self, key_id: str, secret: str) -> str | None:
        """The organisation of a key that is valid and not revoked."""
        key = await self.store.by_id(key_id)
        if key is None or key.revoked_at is not None or not api_key_matches(secret, key.secret_hash):
            return None
        return key.org

    async def create(self, principal: Principal, name: str) -> tuple[ApiKey, str]:
        """The new key, and its plaintext: shown once, never stored."""
        generated = generate_api_key()
        key = ApiKey(
            key_id=generated.key_id,
            org=principal.org,
            name=name,
            secret_hash=generated.secret_hash,
            created_at=self.clock(),
            created_by=principal.sub,
        )
        await self.store.insert(key)
        return key, generated.plaintext

    async def page(
        self, principal: Principal, cursor: str | None, limit: int
    ) -> tuple[list[ApiKey], str | None]:
        return await self.store.page(principal.org, cursor, limit)

    async def revoke(self, principal: Principal, key_id: str) -> ApiKey:
        key = await self.store.revoke(principal.org, key_id, self.clock())
        if key is None:
            raise NotFound(f"no API key {key_id!r}")
        return key
