"""What the content service consumes: shares (to count them per item) and erasures."""

from __future__ import annotations

from services.content.service import ContentService
from shared.events import Event
from shared.events.advocates import AdvocateErased
from shared.events.shares import ShareMade
from shared.messaging import Subscription


def build_subscription(service: ContentService) -> Subscription:
    subscription = Subscription(group="content")

    @subscription.on(ShareMade)
    async def share_made(event: Event[ShareMade]) -> None:
        await service.count_share(event.tenant, event.data.content_id, event.id)

    @subscription.on(AdvocateErased)
    async def advocate_erased(event: Event[AdvocateErased]) -> None:
        await service.erase_advocate(event.tenant, event.data.advocate_id)

    return subscription
