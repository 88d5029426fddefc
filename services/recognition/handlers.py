"""What recognition consumes: a few lines per event, each calling the service."""

from __future__ import annotations

import asyncio

from services.recognition.domain import Kind
from services.recognition.service import RecognitionService, utc
from shared.events import Event
from shared.events.advocates import AdvocateEnrolled, AdvocateErased, AdvocateUpdated
from shared.events.clicks import ClickRecorded
from shared.events.content import ContentPublished
from shared.events.conversions import LeadCaptured, SaleRecorded
from shared.events.shares import ShareMade
from shared.events.topics import CLICKS
from shared.events.training import CourseCompleted, PolicyAcknowledged
from shared.messaging import Batch, Subscription

GROUP = "recognition"
CLICK_CONCURRENCY = 16


def build_subscription(service: RecognitionService) -> Subscription:
    subscription = Subscription(group=GROUP)

    @subscription.on(ShareMade)
    async def share_made(event: Event[ShareMade]) -> None:
        d = event.data
        await service.share_made(
            event.tenant,
            event.id,
            event.type,
            share_id=d.share_id,
            advocate_id=d.advocate_id,
            content_id=d.content_id,
            tags=list(d.tags),
            team=d.team,
            shared_at=utc(d.shared_at),
        )

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
                    d = event.data
                    await service.click_recorded(
                        event.tenant,
                        event.id,
                        event.type,
                        click_id=d.click_id,
                        share_id=d.share_id,
                        advocate_id=d.advocate_id,
                        content_id=d.content_id,
                        bot=d.bot,
                        unique=d.unique,
                        self_click=d.self_click,
                        tags=list(d.tags),
                        team=d.team,
                        clicked_at=utc(d.clicked_at),
                    )

        await asyncio.gather(*(one_share(events) for events in by_share.values()))

    @subscription.on(LeadCaptured)
    async def lead_captured(event: Event[LeadCaptured]) -> None:
        d = event.data
        await service.conversion(
            event.tenant,
            event.id,
            event.type,
            Kind.LEAD,
            conversion_id=d.conversion_id,
            advocate_id=d.advocate_id,
            content_id=d.content_id,
            share_id=d.share_id,
            converted_at=utc(d.converted_at),
        )

    @subscription.on(SaleRecorded)
    async def sale_recorded(event: Event[SaleRecorded]) -> None:
        d = event.data
        await service.conversion(
            event.tenant,
            event.id,
            event.type,
            Kind.SALE,
            conversion_id=d.conversion_id,
            advocate_id=d.advocate_id,
            content_id=d.content_id,
            share_id=d.share_id,
            converted_at=utc(d.converted_at),
        )

    @subscription.on(CourseCompleted)
    async def course_completed(event: Event[CourseCompleted]) -> None:
        d = event.data
        await service.course_completed(
            event.tenant,
            event.id,
            event.type,
            advocate_id=d.advocate_id,
            course_id=d.course_id,
            at=utc(event.time),
        )

    @subscription.on(PolicyAcknowledged)
    async def policy_acknowledged(event: Event[PolicyAcknowledged]) -> None:
        d = event.data
        await service.policy_acknowledged(
            event.tenant,
            event.id,
            event.type,
            advocate_id=d.advocate_id,
            version=d.policy_version,
            at=utc(event.time),
        )

    @subscription.on(ContentPublished)
    async def content_published(event: Event[ContentPublished]) -> None:
        d = event.data
        await service.content_published(
            event.tenant,
            event.id,
            event.type,
            content_id=d.content_id,
            author=d.author_advocate_id,
            tags=list(d.tags),
            published_at=utc(event.time),
        )

    @subscription.on(AdvocateEnrolled)
    async def advocate_enrolled(event: Event[AdvocateEnrolled]) -> None:
        await service.advocate_profile(event.tenant, event.data)

    @subscription.on(AdvocateUpdated)
    async def advocate_updated(event: Event[AdvocateUpdated]) -> None:
        await service.advocate_profile(event.tenant, event.data)

    @subscription.on(AdvocateErased)
    async def advocate_erased(event: Event[AdvocateErased]) -> None:
        await service.advocate_erased(event.tenant, event.data.advocate_id)

    return subscription
