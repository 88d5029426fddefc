"""Every Chorus event type may be wanted by some endpoint: one subscription takes them all."""

from __future__ import annotations

from services.metrics.webhooks.service import WebhookService
from shared.events import REGISTRY, AnyEvent
from shared.messaging import Subscription


def build_subscription(service: WebhookService) -> Subscription:
    subscription = Subscription(group="metrics-webhooks")

    async def enqueue(event: AnyEvent) -> None:
        await service.enqueue(event)

    for registration in REGISTRY.values():
        subscription.on(registration.model)(enqueue)
    return subscription
