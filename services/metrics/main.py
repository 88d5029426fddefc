"""The metrics service's app. Nothing connects at import: see shared/app.py for the lifespan."""

from __future__ import annotations

from fastapi import FastAPI, Request

from services.metrics.api import router
from services.metrics.handlers import build_attribution_subscription, build_subscription
from services.metrics.service import MetricsService
from services.metrics.settings import MetricsSettings
from services.metrics.store import INDEXES, OUTBOX_COLLECTIONS
from services.metrics.webhooks import api as webhooks_api
from services.metrics.webhooks import handlers as webhooks_handlers
from services.metrics.webhooks.service import WebhookService
from services.metrics.webhooks.store import INDEXES as WEBHOOK_INDEXES
from services.metrics.webhooks.store import WebhookStore
from shared.app import Periodic, Runtime, Wiring, create_service_app
from shared.webhooks.engine import DeliveryStore

DESCRIPTION = (
    "Attribution from click to revenue: projections of shares, clicks and conversions, the "
    "conversions API for websites and CRMs, funnel analytics, program goals and surveys."
)


def create_app(settings: MetricsSettings | None = None) -> FastAPI:
    settings = settings or MetricsSettings()

    async def wire(runtime: Runtime) -> Wiring:
        service = MetricsService(settings, runtime.db, runtime.outbox)

        async def resolve_api_key(request: Request, key_id: str, secret: str) -> str | None:
            return await service.resolve_api_key(key_id, secret)

        webhooks = WebhookService(
            settings,
            WebhookStore(runtime.db),
            DeliveryStore(runtime.db),
            retry_base_s=settings.webhook_retry_base_s,
            # Plain http to a local receiver is for development only.
            allow_insecure_loopback=settings.environment != "prod",
        )
        await webhooks.adopt_earlier_deliveries()

        return Wiring(
            service=service,
            subscriptions=[
                build_subscription(service),
                build_attribution_subscription(service),
                webhooks_handlers.build_subscription(webhooks),
            ],
            periodic=[
                Periodic("metrics-goal-snapshots", settings.goal_snapshot_every_s, service.snapshot_goals),
                Periodic(
                    "metrics-webhook-dispatch", settings.webhook_dispatch_every_s, webhooks.dispatch_due
                ),
            ],
            api_key_resolver=resolve_api_key,
            on_stop=[webhooks.close],
            state={"webhooks": webhooks},
        )

    return create_service_app(
        name="metrics",
        settings=settings,
        routers=[router, webhooks_api.router],
        indexes=INDEXES + WEBHOOK_INDEXES,
        wire=wire,
        outbox_collections=OUTBOX_COLLECTIONS,
        description=DESCRIPTION,
    )
