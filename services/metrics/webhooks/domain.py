"""Webhook rules: which URLs and event types are acceptable, and what a delivery attempt leads to."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from shared import webhooks
from shared.errors import InvalidInput
from shared.events import REGISTRY

MAX_ATTEMPTS = 12
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


def check_url(url: str, *, allow_insecure_loopback: bool) -> str:
    """https only; plain http to loopback is allowed in development, for local receivers."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidInput.field("url", "must be an absolute http(s) URL")
    host = parts.hostname.lower()
    if parts.scheme == "http" and not (allow_insecure_loopback and host in LOOPBACK_HOSTS):
        raise InvalidInput.field("url", "must use https")
    if parts.username or parts.password:
        raise InvalidInput.field("url", "must not carry credentials; the signature authenticates us")
    if not allow_insecure_loopback and _is_internal(host):
        raise InvalidInput.field("url", "must not point at a private or loopback address")
    return url


def _is_internal(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local or address.is_reserved


def check_event_types(event_types: list[str]) -> list[str]:
    unknown = sorted(set(event_types) - set(REGISTRY))
    if unknown:
        raise InvalidInput.field("event_types", f"unknown event types: {', '.join(unknown)}")
    if not event_types:
        raise InvalidInput.field("event_types", "name at least one event type")
    return sorted(set(event_types))


@dataclass(frozen=True)
class AttemptOutcome:
    state: str  # "delivered", "pending" (retry later) or "failed" (gave up)
    next_attempt_at: datetime | None


def after_attempt(attempts: int, status: int | None, now: datetime, retry_base_s: float) -> AttemptOutcome:
    """What follows try number `attempts` that got HTTP `status` (None: no response at all)."""
    if status is not None and 200 <= status < 300:
        return AttemptOutcome("delivered", None)
    if attempts >= MAX_ATTEMPTS:
        return AttemptOutcome("failed", None)
    return AttemptOutcome("pending", now + webhooks.backoff(attempts, retry_base_s))


def delivery_id(endpoint_id: str, event_id: str, replay_id: str | None = None) -> str:
    """One delivery per endpoint and event (so redelivered events are not sent twice), and one
    more per replay that covers the event."""
    base = f"{endpoint_id}:{event_id}"
    return f"{base}:replay-{replay_id}" if replay_id else base


def claim_lease() -> timedelta:
    """How long a dispatcher holds a delivery it is sending before another may take it."""
    return timedelta(seconds=60)
