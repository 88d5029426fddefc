"""What recognition consumes: who reacts to which event, a few lines each, calling module services."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from services.recognition.rules.domain import Kind
from shared.api_keys import follow_api_keys
from shared.events import Event
from shared.events.advocates import AdvocateEnrolled, AdvocateErased, AdvocateUpdated
from shared.events.clicks import ClickRecorded
from shared.events.content import ContentPublished
from shared.events.conversions import (
    ApplicationSubmitted,
    Conversion,
    HireMade,
    LeadCaptured,
    SaleRecorded,
    SaleRefunded,
)
from shared.events.shares import ShareMade
from shared.events.topics import CLICKS
from shared.events.training import CourseCompleted, PolicyAcknowledged
from shared.messaging import Batch, Subscription

if TYPE_CHECKING:
    from services.recognition.main import Recognition

GROUP = "recognition"
CLICK_CONCURRENCY = 16
# Every conversion scores alike, by its kind.
CONVERSION_KINDS: dict[type[Conversion], Kind] = {
    LeadCaptured: Kind.LEAD,
    SaleRecorded: Kind.SALE,
    ApplicationSubmitted: Kind.APPLICATION,
    HireMade: Kind.HIRE,
}


def build_subscription(recognition: Recognition) -> Subscription:
    # The modules are read when an event comes, not now: the consumer map (devtools/consumers.py)
    # builds this without a running service.
    subscription = Subscription(group=GROUP)

    @subscription.on(ShareMade)
    async def share_made(event: Event[ShareMade]) -> None:
        await recognition.points.share_made(event)
        await recognition.engagement.share_made(event)  # tag counts, for top-on-tag goals

    @subscription.on_batch(CLICKS)
    async def clicks(batch: Batch) -> None:
        # Clicks are the heavy stream: shares are handled side by side, each share's clicks in
        # order (the first real click of a share is its verifying click).
        by_share: dict[str, list[Event[ClickRecorded]]] = {}
        for event in batch.events:
            if isinstance(event.data, ClickRecorded):
                by_share.setdefault(event.data.share_id, []).append(event)  # type: ignore[arg-type]
        limit = asyncio.Semaphore(CLICK_CONCURRENCY)

        async def one_share(events: list[Event[ClickRecorded]]) -> None:
            async with limit:
                for event in events:
                    await recognition.points.click_recorded(event)

        await asyncio.gather(*(one_share(events) for events in by_share.values()))

    def scored_as(kind: Kind) -> Callable[[Event[Conversion]], Awaitable[None]]:
        async def conversion(event: Event[Conversion]) -> None:
            await recognition.points.conversion(event, kind)

        return conversion

    for model, kind in CONVERSION_KINDS.items():
        subscription.on(model)(scored_as(kind))

    # Events the points module takes as they are, one line each.
    subscription.on(SaleRefunded)(lambda event: recognition.points.sale_refunded(event))
    subscription.on(CourseCompleted)(lambda event: recognition.points.course_completed(event))
    subscription.on(PolicyAcknowledged)(lambda event: recognition.points.policy_acknowledged(event))
    subscription.on(ContentPublished)(lambda event: recognition.points.content_published(event))

    async def profile(event: Event[AdvocateEnrolled] | Event[AdvocateUpdated]) -> None:
        kept = await recognition.profiles.update(event.tenant, event.data)
        if kept is not None:
            await recognition.leaderboards.follow_consent(event.tenant, kept.advocate_id, kept.ranked)
            if not kept.active:
                await recognition.points.leaver(event.tenant, kept.advocate_id, event.id)

    subscription.on(AdvocateEnrolled)(profile)
    subscription.on(AdvocateUpdated)(profile)

    @subscription.on(AdvocateErased)
    async def advocate_erased(event: Event[AdvocateErased]) -> None:
        await recognition.profiles.erase(event.tenant, event.data.advocate_id, event.time)  # every module

    follow_api_keys(subscription, lambda: recognition.api_keys)  # the fulfilment system's keys
    return subscription
