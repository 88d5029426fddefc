"""What the metrics service consumes: batch projectors for the busy topics, one handler per event
type for the rest. Each handler is a few lines calling service.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from services.metrics import domain
from services.metrics.domain import Tally
from services.metrics.service import MetricsService
from shared.events import Event
from shared.events.advocates import AdvocateEnrolled, AdvocateErased, AdvocateUpdated
from shared.events.clicks import CountedClick
from shared.events.content import SettingsUpdated
from shared.events.training import CourseCompleted
from shared.messaging import Batch, Subscription

GROUP = "metrics"
# The click index for attribution reads chorus.clicks in a group of its own (see
# MetricsService.index_clicks).
ATTRIBUTION_GROUP = "metrics-attribution"
# Records per poll across partitions. Each partition's share of a poll costs a few document
# writes whatever its size, so larger polls mean fewer writes per click under load; a poll
# returns as soon as records are there, so a small load still sees small, prompt batches.
MAX_BATCH = 20_000
# The projector reads clicks as only what they count for: it decodes every click, and a click
# decodes as CountedClick in about 0.8 of the time of the whole event (bench/pipeline/decode.py).
PROJECTED_AS = (CountedClick,)


def build_subscription(service: MetricsService) -> Subscription:
    subscription = Subscription(group=GROUP, max_batch=MAX_BATCH)
    shares_topic, clicks_topic, conversions_topic = service.settings.projected_topics()

    # Clicks carry the traffic: a worker process decodes and folds each poll (a Tally) while the
    # consumer fetches the next; its tally is written in one update per document.
    def projector(topic: str) -> Callable[[Tally], Awaitable[None]]:
        async def project(tally: Tally) -> None:
            await service.project_live(topic, tally)

        return project

    for topic in (shares_topic, clicks_topic, conversions_topic):
        subscription.on_tally(topic, tally=domain.tally_events, read_as=PROJECTED_AS)(projector(topic.name))

    @subscription.on(AdvocateEnrolled)
    async def enrolled(event: Event[AdvocateEnrolled]) -> None:
        await service.advocate_profile(event.tenant, event.data)

    @subscription.on(AdvocateUpdated)
    async def updated(event: Event[AdvocateUpdated]) -> None:
        await service.advocate_profile(event.tenant, event.data)

    @subscription.on(AdvocateErased)
    async def erased(event: Event[AdvocateErased]) -> None:
        await service.advocate_erased(event.tenant, event.data)

    @subscription.on(CourseCompleted)
    async def course_completed(event: Event[CourseCompleted]) -> None:
        await service.course_completed(event.tenant, event.data)

    @subscription.on(SettingsUpdated)
    async def settings_updated(event: Event[SettingsUpdated]) -> None:
        await service.settings_updated(event.tenant, event.data)

    return subscription


def build_attribution_subscription(service: MetricsService) -> Subscription:
    subscription = Subscription(group=ATTRIBUTION_GROUP, max_batch=MAX_BATCH)
    _, clicks_topic, _ = service.settings.projected_topics()

    @subscription.on_batch(clicks_topic)
    async def clicks(batch: Batch) -> None:
        await service.index_clicks(batch.items)

    return subscription
