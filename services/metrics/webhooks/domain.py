"""Webhook rules of metrics: which event types may be chosen and how deliveries are named. The
URL check, the retry schedule and the delivery states are the engine's (shared/webhooks/policy.py)."""

from __future__ import annotations

from shared.errors import InvalidInput
from shared.events.envelope import offered_to_integrations

MAX_ATTEMPTS = 12


def check_event_types(event_types: list[str]) -> list[str]:
    unknown = sorted(set(event_types) - set(offered_to_integrations()))
    if unknown:
        raise InvalidInput.field("event_types", f"unknown event types: {', '.join(unknown)}")
    if not event_types:
        raise InvalidInput.field("event_types", "name at least one event type")
    return sorted(set(event_types))


def delivery_id(endpoint_id: str, event_id: str, replay_id: str | None = None) -> str:
    """One delivery per endpoint and event (so redelivered events are not sent twice), and one
    more per replay that covers the event."""
    base = f"{endpoint_id}:{event_id}"
    return f"{base}:replay-{replay_id}" if replay_id else base
