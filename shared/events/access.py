"""Events on `chorus.access` (key: API key id): the organisations' API keys, for Chorus's own
services. Metrics issues and revokes keys; every service that accepts them keeps a projection
(shared/api_keys.py). Never offered to webhooks or integrators: `secret_hash` is the SHA-256 of
a 256-bit random secret, useless without the secret, but nobody outside Chorus needs it."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from shared.events.envelope import EventData, event
from shared.events.topics import ACCESS


@event("chorus.api_key.issued", topic=ACCESS, key="key_id")
class ApiKeyIssued(EventData):
    key_id: str
    scopes: list[str] = Field(description="what the key may do, e.g. redemptions:fulfil")
    secret_hash: str = Field(description="SHA-256 of the key's secret (hex); the key itself never travels")
    expires_at: datetime | None = Field(None, description="after this the key is refused; none: never")


@event("chorus.api_key.revoked", topic=ACCESS, key="key_id")
class ApiKeyRevoked(EventData):
    key_id: str
    revoked_at: datetime
