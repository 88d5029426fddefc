"""Sharing's subscriptions: its projection of what may be shared (chorus.content), of who has
met the training gate (chorus.training), erasure (chorus.advocates), and the organisations' API
keys (chorus.access, for SCIM provisioning).

Each topic is consumed in batches: the events of one key (one content item, one advocate, one
org's settings) are applied in order, different keys concurrently. A new consumer group (a new
deployment, a test session) starts from the beginning of these topics, and one write at a time
made that replay take minutes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from services.sharing.advocates.service import AdvocatesService
from services.sharing.catalog.service import CatalogService
from services.sharing.erasure.service import ErasureService
from shared.api_keys import KnownKeys, follow_api_keys
from shared.events import Event, EventData
from shared.events.advocates import AdvocateErased
from shared.events.content import (
    ContentArchived,
    ContentPublished,
    ContentRejected,
    ContentUpdated,
    PolicyPublished,
    SettingsUpdated,
)
from shared.events.topics import ADVOCATES, CONTENT, TRAINING
from shared.events.training import CourseCompleted, PolicyAcknowledged
from shared.messaging import Batch, Subscription

Handler = Callable[[Event[Any]], Awaitable[None]]
CONCURRENT_KEYS = 16


def build_handlers(
    advocates: AdvocatesService, catalog: CatalogService, erasure: ErasureService
) -> dict[type[EventData], Handler]:
    async def content_published(event: Event[ContentPublished]) -> None:
        await catalog.project_content(event.tenant, event.data, "published")

    async def content_updated(event: Event[ContentUpdated]) -> None:
        await catalog.project_content(event.tenant, event.data, event.data.status)

    async def content_archived(event: Event[ContentArchived]) -> None:
        await catalog.set_content_status(event.tenant, event.data.content_id, "archived")

    async def content_rejected(event: Event[ContentRejected]) -> None:
        await catalog.set_content_status(event.tenant, event.data.content_id, "rejected")

    async def settings_updated(event: Event[SettingsUpdated]) -> None:
        # A changed default for names re-announces the advocates who follow it, before the
        # settings are kept: a redelivery after a crash in between still sees the change.
        if (
            await catalog.rules(event.tenant)
        ).names_visible_by_default != event.data.names_visible_by_default:
            await advocates.follow_names_default(event.tenant, event.data.names_visible_by_default)
        await catalog.project_settings(event.tenant, event.data)

    async def policy_published(event: Event[PolicyPublished]) -> None:
        await catalog.project_policy(event.tenant, event.data.version)

    async def course_completed(event: Event[CourseCompleted]) -> None:
        await advocates.project_course(event.tenant, event.data.advocate_id, event.data.course_id, event.time)

    async def policy_acknowledged(event: Event[PolicyAcknowledged]) -> None:
        await advocates.project_policy_acknowledgement(
            event.tenant, event.data.advocate_id, event.data.policy_version, event.time
        )

    async def advocate_erased(event: Event[AdvocateErased]) -> None:
        await erasure.erased(event.tenant, event.data.advocate_id, event.time)

    return {
        ContentPublished: content_published,
        ContentUpdated: content_updated,
        ContentArchived: content_archived,
        ContentRejected: content_rejected,
        SettingsUpdated: settings_updated,
        PolicyPublished: policy_published,
        CourseCompleted: course_completed,
        PolicyAcknowledged: policy_acknowledged,
        AdvocateErased: advocate_erased,
    }


def build_subscription(
    advocates: AdvocatesService, catalog: CatalogService, erasure: ErasureService, api_keys: KnownKeys
) -> Subscription:
    subscription = Subscription(group="sharing")
    handlers = build_handlers(advocates, catalog, erasure)
    limit = asyncio.Semaphore(CONCURRENT_KEYS)

    async def apply_in_key_order(events: list[Event[EventData]]) -> None:
        async with limit:
            for event in events:
                handler = handlers.get(type(event.data))
                if handler is not None:
                    await handler(event)

    async def apply_batch(batch: Batch) -> None:
        by_key: dict[tuple[str, str], list[Event[EventData]]] = {}
        for event in batch.events:
            by_key.setdefault((event.tenant, event.data.record_key()), []).append(event)
        await asyncio.gather(*(apply_in_key_order(events) for events in by_key.values()))

    for topic in (CONTENT, TRAINING, ADVOCATES):
        subscription.on_batch(topic)(apply_batch)
    follow_api_keys(subscription, lambda: api_keys)
    return subscription
