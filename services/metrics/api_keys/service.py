"""Use cases of the API keys: create, list, revoke, and resolve a caller's key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.metrics.api_keys import domain
from services.metrics.api_keys.domain import ApiKey
from services.metrics.api_keys.store import ApiKeyStore
from shared.api_keys import resolved
from shared.auth import Principal, ResolvedKey
from shared.clock import Clock, utc_now
from shared.errors import found
from shared.outbox import Outbox


@dataclass(eq=False)
class ApiKeyService:
    store: ApiKeyStore
    outbox: Outbox
    clock: Clock = utc_now

    async def resolve(self, key_id: str, secret: str) -> ResolvedKey | None:
        """The organisation and scopes of a key that is valid: not revoked, not expired."""
        return resolved(await self.store.by_id(key_id), secret, self.clock())

    async def create(
        self, principal: Principal, name: str, scopes: tuple[str, ...], expires_at: datetime | None
    ) -> tuple[ApiKey, str]:
        """The new key, and its plaintext: shown once, never stored."""
        key, plaintext = domain.issue(principal, name, scopes, expires_at, self.clock())
        await self.store.insert(key, domain.issued(key))
        self.outbox.nudge()
        return key, plaintext

    async def page(
        self, principal: Principal, cursor: str | None, limit: int
    ) -> tuple[list[ApiKey], str | None]:
        return await self.store.page(principal.org, cursor, limit)

    async def revoke(self, principal: Principal, key_id: str) -> ApiKey:
        """Revoked here at once, and on the other services as soon as they read the event."""
        key = found(await self.store.of(principal.org, key_id), f"no API key {key_id!r}")
        if key.revoked_at is not None:
            return key
        revoked = domain.revoke(key, self.clock())
        if not await self.store.revoke(revoked, domain.revoked(revoked)):
            return await self.revoke(principal, key_id)  # revoked meanwhile: answer what is stored
        self.outbox.nudge()
        return revoked

    async def erase_creator(self, org: str, advocate_id: str) -> None:
        await self.store.erase_creator(org, advocate_id)
