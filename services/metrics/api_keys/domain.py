"""Rules of the API keys: what a new key is, and the events that tell the other services."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from shared.auth import Principal, generate_api_key
from shared.errors import InvalidInput
from shared.events import Event
from shared.events.access import ApiKeyIssued, ApiKeyRevoked

SOURCE = "/chorus/metrics"


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    org: str
    name: str
    secret_hash: str  # never the key itself
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    scopes: tuple[str, ...] = ()
    expires_at: datetime | None = None


def issue(
    principal: Principal, name: str, scopes: tuple[str, ...], expires_at: datetime | None, now: datetime
) -> tuple[ApiKey, str]:
    """A new key of the principal's organisation, and its plaintext (shown once, never stored)."""
    if expires_at is not None and expires_at <= now:
        raise InvalidInput.field("expires_at", "must be in the future")
    generated = generate_api_key()
    key = ApiKey(
        key_id=generated.key_id,
        org=principal.org,
        name=name,
        secret_hash=generated.secret_hash,
        created_at=now,
        created_by=principal.sub,
        scopes=tuple(dict.fromkeys(scopes)),
        expires_at=expires_at,
    )
    return key, generated.plaintext


def revoke(key: ApiKey, now: datetime) -> ApiKey:
    return replace(key, revoked_at=now)


def issued(key: ApiKey) -> Event[ApiKeyIssued]:
    # One id per key and change: an event queued twice (two replicas' migrations) is one event.
    data = ApiKeyIssued(
        key_id=key.key_id, scopes=list(key.scopes), secret_hash=key.secret_hash, expires_at=key.expires_at
    )
    return Event.create(
        data, tenant=key.org, source=SOURCE, subject=key.key_id, event_id=f"{key.key_id}.issued"
    )


def revoked(key: ApiKey) -> Event[ApiKeyRevoked]:
    assert key.revoked_at is not None
    data = ApiKeyRevoked(key_id=key.key_id, revoked_at=key.revoked_at)
    return Event.create(
        data, tenant=key.org, source=SOURCE, subject=key.key_id, event_id=f"{key.key_id}.revoked"
    )
