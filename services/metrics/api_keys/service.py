"""Use cases of the API keys: create, list, revoke, and resolve a caller's key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.metrics.api_keys.store import ApiKey, ApiKeyStore
from shared.auth import Principal, ResolvedKey, api_key_matches, generate_api_key
from shared.clock import Clock, utc_now
from shared.errors import InvalidInput, NotFound


@dataclass(eq=False)
class ApiKeyService:
    store: ApiKeyStore
    clock: Clock = utc_now

    async def resolve(self, key_id: str, secret: str) -> ResolvedKey | None:
        """The organisation and scopes of a key that is valid: not revoked, not expired."""
        key = await self.store.by_id(key_id)
        if key is None or key.revoked_at is not None or not api_key_matches(secret, key.secret_hash):
            return None
        if key.expires_at is not None and self.clock() >= key.expires_at:
            return None
        return ResolvedKey(key.org, frozenset(key.scopes))

    async def create(
        self, principal: Principal, name: str, scopes: tuple[str, ...], expires_at: datetime | None
    ) -> tuple[ApiKey, str]:
        """The new key, and its plaintext: shown once, never stored."""
        if expires_at is not None and expires_at <= self.clock():
            raise InvalidInput.field("expires_at", "must be in the future")
        generated = generate_api_key()
        key = ApiKey(
            key_id=generated.key_id,
            org=principal.org,
            name=name,
            secret_hash=generated.secret_hash,
            created_at=self.clock(),
            created_by=principal.sub,
            scopes=tuple(dict.fromkeys(scopes)),
            expires_at=expires_at,
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
