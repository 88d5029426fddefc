"""The recognition service's app. Nothing connects at import: see shared/app.py for the lifespan."""

from __future__ import annotations

from fastapi import FastAPI

from services.recognition.api import router
from services.recognition.handlers import build_subscription
from services.recognition.service import RecognitionService
from services.recognition.settings import RecognitionSettings
from services.recognition.store import INDEXES, OUTBOX_COLLECTIONS, RecognitionStore
from shared.app import Periodic, Runtime, Wiring, create_service_app
from shared.settings import ChorusSettings

DESCRIPTION = (
    "Points ledger, badges (Open Badges 3.0), leaderboards, rewards and redemptions, kudos and personal "
    "goals. Points come from events (shares, verified shares, clicks, leads, sales, training, own content) "
    "scored by per-organisation rules."
)


def create_app(settings: ChorusSettings | None = None) -> FastAPI:
    if settings is None:
        settings = RecognitionSettings()
    elif not isinstance(settings, RecognitionSettings):
        settings = RecognitionSettings(**settings.model_dump())
    recognition_settings = settings

    async def wire(runtime: Runtime) -> Wiring:
        service = RecognitionService(RecognitionStore(runtime.db), runtime.outbox, recognition_settings)
        await service.adopt_earlier_deliveries()
        return Wiring(
            service=service,
            subscriptions=[build_subscription(service)],
            periodic=[
                # From the start: a replica restarted after a crash finishes what it left half
                # done at once. Its queries read only pending work (partial indexes in store.py).
                Periodic("recognition-relay", recognition_settings.relay_every_s, service.relay),
                Periodic(
                    "recognition-webhooks", recognition_settings.webhook_every_s, service.deliver_webhooks
                ),
            ],
            on_stop=[service.standings.close, service.team_boards.close, service.webhooks.close],
        )

    return create_service_app(
        name="recognition",
        settings=settings,
        routers=[router],
        indexes=INDEXES,
        wire=wire,
        outbox_collections=OUTBOX_COLLECTIONS,
        description=DESCRIPTION,
    )
