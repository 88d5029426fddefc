"""The metrics service's app. Nothing connects at import: see shared/app.py for the lifespan."""

from __future__ import annotations

from fastapi import FastAPI, Request

from services.metrics.api import router
from services.metrics.handlers import build_subscription
from services.metrics.service import MetricsService
from services.metrics.settings import MetricsSettings
from services.metrics.store import INDEXES
from shared import idempotency
from shared.app import Periodic, Runtime, Wiring, create_service_app

DESCRIPTION = (
    "Attribution from click to revenue: projections of shares, clicks and conversions, the "
    "conversions API for websites and CRMs, funnel analytics, program goals and surveys."
)


def create_app(settings: MetricsSettings | None = None) -> FastAPI:
    settings = settings or MetricsSettings()

    async def wire(runtime: Runtime) -> Wiring:
        service = MetricsService(settings, runtime.db, runtime.producer)

        async def resolve_api_key(request: Request, key_id: str, secret: str) -> str | None:
            return await service.resolve_api_key(key_id, secret)

        async def sweep_idempotency_keys() -> None:
            await idempotency.sweep(runtime.db)

        return Wiring(
            service=service,
            subscriptions=[build_subscription(service)],
            periodic=[
                Periodic(
                    "metrics-conversion-relay", settings.conversion_relay_every_s, service.relay_conversions
                ),
                Periodic("metrics-goal-snapshots", settings.goal_snapshot_every_s, service.snapshot_goals),
                Periodic("metrics-idempotency-sweep", 3600.0, sweep_idempotency_keys),
            ],
            api_key_resolver=resolve_api_key,
        )

    return create_service_app(
        name="metrics",
        settings=settings,
        routers=[router],
        indexes=INDEXES,
        wire=wire,
        description=DESCRIPTION,
    )
