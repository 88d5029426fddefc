"""API keys accepted by every service that integrators call.

Metrics issues and revokes an organisation's keys (services/metrics/api_keys) and emits
`chorus.api_key.issued` / `chorus.api_key.revoked` on `chorus.access`. Every other service that
accepts keys keeps its own projection of them (`KnownKeys`), so a key works on every service
without any service calling another, and a revocation reaches each one as fast as its consumer
reads the event (about a second). The one rule of a key's validity is `resolved` below.

The key's format and the HTTP side (an `X-API-Key` header, or `Authorization: Bearer chorus_...`
as SCIM clients send it) are shared/auth.py's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from fastapi import Request
from pymongo.asynchronous.database import AsyncDatabase

from shared.auth import ApiKeyResolver, ResolvedKey, api_key_matches
from shared.clock import Clock, utc_now
from shared.documents import Documents
from shared.events import Event
from shared.events.access import ApiKeyIssued, ApiKeyRevoked
from shared.messaging import Subscription
from shared.mongo import Document
from shared.tenancy import Tenants

# What a key may be allowed to do, and which service's endpoints each scope opens.
SCOPES: dict[str, str] = {
    "conversions:write": "report leads, sales, applications, hires and refunds (metrics)",
    "surveys:respond": "send survey responses (metrics)",
    "redemptions:fulfil": "mark approved reward redemptions fulfilled (recognition)",
    "scim:provision": "provision employees and groups over SCIM 2.0 (sharing)",
}
# What a key made without naming its scopes may do: what every key could do before scopes.
DEFAULT_SCOPES = ("conversions:write", "surveys:respond")


class StoredKey(Protocol):
    """What a service keeps of a key: metrics' own record, or another service's copy."""

    @property
    def org(self) -> str: ...
    @property
    def scopes(self) -> tuple[str, ...]: ...
    @property
    def secret_hash(self) -> str: ...
    @property
    def revoked_at(self) -> datetime | None: ...
    @property
    def expires_at(self) -> datetime | None: ...


def resolved(key: StoredKey | None, secret: str, now: datetime) -> ResolvedKey | None:
    """The organisation and scopes of a key that is valid: its secret matches, it is not revoked
    and not past its expiry. None otherwise."""
    if key is None or key.revoked_at is not None or (key.expires_at is not None and now >= key.expires_at):
        return None
    if not api_key_matches(secret, key.secret_hash):
        return None
    return ResolvedKey(key.org, frozenset(key.scopes))


KNOWN_KEYS = "api_keys"


@dataclass(frozen=True)
class KnownKey:
    """A service's copy of a key it accepts, from the key's events."""

    key_id: str
    org: str
    scopes: tuple[str, ...] = ()
    secret_hash: str = ""
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


DOCUMENTS = Documents(KnownKey, id_field="key_id")


class KnownKeys:
    """A service's projection of the organisations' API keys, and its resolver."""

    def __init__(self, db: AsyncDatabase[Document], clock: Clock = utc_now) -> None:
        self.tenants = Tenants(db)
        self.clock = clock

    async def issued(self, event: Event[ApiKeyIssued]) -> None:
        data = event.data
        # A revocation read before its key (a replay from another offset) stays a revocation.
        await self.tenants.of(event.tenant, KNOWN_KEYS).update_one(
            {"_id": data.key_id},
            {
                "$set": {
                    "scopes": list(data.scopes),
                    "secret_hash": data.secret_hash,
                    "expires_at": data.expires_at,
                },
                "$setOnInsert": {"revoked_at": None},
            },
            upsert=True,
        )

    async def revoked(self, event: Event[ApiKeyRevoked]) -> None:
        await self.tenants.of(event.tenant, KNOWN_KEYS).update_one(
            {"_id": event.data.key_id}, {"$set": {"revoked_at": event.data.revoked_at}}, upsert=True
        )

    async def resolve(self, key_id: str, secret: str) -> ResolvedKey | None:
        keys = self.tenants.across(KNOWN_KEYS, why="a caller's API key names its organisation")
        return resolved(await DOCUMENTS.one(keys, {"_id": key_id}), secret, self.clock())

    def resolver(self) -> ApiKeyResolver:
        async def resolve(request: Request, key_id: str, secret: str) -> ResolvedKey | None:
            return await self.resolve(key_id, secret)

        return resolve


def follow_api_keys(subscription: Subscription, known_keys: Callable[[], KnownKeys]) -> None:
    """Keep `known_keys()` (read when an event comes) up to date from `chorus.access`."""

    @subscription.on(ApiKeyIssued)
    async def api_key_issued(event: Event[ApiKeyIssued]) -> None:
        await known_keys().issued(event)

    @subscription.on(ApiKeyRevoked)
    async def api_key_revoked(event: Event[ApiKeyRevoked]) -> None:
        await known_keys().revoked(event)
