"""What the metrics service consumes, and which module reacts: batch projectors for the busy
topics, one handler per event type for the rest, and every event for the outbound webhooks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from services.metrics.modules import MetricsModules
from services.metrics.projections import domain
from services.metrics.projections.domain import Tally
from services.metrics.webhooks.service import WebhookService
from shared.events import AnyEvent, Event
from shared.events.advocates import AdvocateEnrolled, AdvocateErased, AdvocateUpdated
from shared.events.clicks import CountedClick
from shared.events.content import SettingsUpdated
from shared.events.envelope import offered_to_integrations
from shared.events.training import CourseCompleted
from shared.messaging import Batch, Subscription

GROUP = "metrics"
# The click index for attribution reads chorus.clicks in a group of its own (see
# ProjectionService.index_clicks).
ATTRIBUTION_GROUP = "metrics-attribution"
WEBHOOKS_GROUP = "metrics-webhooks"
# Records per poll across partitions. Each partition's share of a poll costs a few document
# writes whatever its size, so larger polls mean fewer writes per click under load; a poll
# returns as soon as records are there, so a small load still sees small, prompt batches.
MAX_BATCH = 20_000
# The projector reads clicks as only what they count for: it decodes every click, and a click
# decodes as CountedClick in about 0.8 of the time of the whole event (bench/pipeline/decode.py).
PROJECTED_AS = (CountedClick,)


def build_subscription(metrics: MetricsModules) -> Subscription:
    # Handlers read the modules when called: building the subscription reads only the settings
    # (devtools/consumers.py builds it without a database).
    subscription = Subscription(group=GROUP, max_batch=MAX_BATCH)
    shares_topic, clicks_topic, conversions_topic = metrics.settings.projected_topics()

    # Clicks carry the traffic: a worker process decodes and folds each poll (a Tally) while the
    # consumer fetches the next; its tally is written in one update per document.
    def projector(topic: str) -> Callable[[Tally], Awaitable[None]]:
        async def project(tally: Tally) -> None:
            await metrics.projections.project_live(topic, tally)

        return project

    for topic in (shares_topic, clicks_topic, conversions_topic):
        subscription.on_tally(topic, tally=domain.tally_events, read_as=PROJECTED_AS)(projector(topic.name))

    async def profile(event: Event[AdvocateEnrolled] | Event[AdvocateUpdated]) -> None:
        await metrics.projections.advocate_profile(event.tenant, event.data)

    subscription.on(AdvocateEnrolled)(profile)
    subscription.on(AdvocateUpdated)(profile)

    @subscription.on(AdvocateErased)
    async def erased(event: Event[AdvocateErased]) -> None:
        org, advocate_id = event.tenant, event.data.advocate_id
        await metrics.projections.erase_advocate(org, advocate_id, event.time)
        await metrics.attribution.erase_advocate(org, advocate_id)
        await metrics.surveys.erase_respondent(org, advocate_id)
        # What they did as staff (the same `sub`) stays the organisation's, naming nobody.
        await metrics.goals.erase_creator(org, advocate_id)
        await metrics.api_keys.erase_creator(org, advocate_id)
        # Last, so that "no longer enrolled" means every step above is done.
        await metrics.projections.unenrol(org, advocate_id)

    @subscription.on(CourseCompleted)
    async def course_completed(event: Event[CourseCompleted]) -> None:
        await metrics.projections.course_completed(event.tenant, event.data)

    @subscription.on(SettingsUpdated)
    async def settings_updated(event: Event[SettingsUpdated]) -> None:
        await metrics.org_settings.settings_updated(event.tenant, event.data)

    return subscription


def build_attribution_subscription(metrics: MetricsModules) -> Subscription:
    subscription = Subscription(group=ATTRIBUTION_GROUP, max_batch=MAX_BATCH)
    _, clicks_topic, _ = metrics.settings.projected_topics()

    @subscription.on_batch(clicks_topic)
    async def clicks(batch: Batch) -> None:
        await metrics.projections.index_clicks(batch.items)

    return subscription


def build_webhooks_subscription(webhooks: WebhookService) -> Subscription:
    """Every event type offered to integrations may be wanted by some endpoint: one subscription
    takes them all."""
    subscription = Subscription(group=WEBHOOKS_GROUP)

    async def enqueue(event: AnyEvent) -> None:
        await webhooks.enqueue(event)

    for registration in offered_to_integrations().values():
        subscription.on(registration.model)(enqueue)
    return subscription
