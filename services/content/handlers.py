"""What the content service consumes: only the erasure of an advocate."""

from __future__ import annotations

from services.content.service import ContentService
from shared.events import Event
from shared.events.advocates import AdvocateErased
from shared.messaging import Subscription


def build_subscription(service: ContentService) -> Subscription:
    subscription = Subscription(group="content")

    @subscription.on(AdvocateErased)
    async def advocate_erased(event: Event[AdvocateErased]) -> None:
        await service.erase_advocate(event.tenant, event.data.advocate_id)

    return subscription
