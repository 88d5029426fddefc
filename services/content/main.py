"""The content service's app. Nothing connects at import: see shared/app.py for the lifespan."""

from __future__ import annotations

from fastapi import FastAPI

from services.content.api import ROUTERS
from services.content.handlers import build_subscription
from services.content.service import ContentService
from services.content.settings import ContentSettings
from services.content.store import INDEXES, OUTBOX_COLLECTIONS, ContentStore
from shared.app import Periodic, Runtime, Wiring, create_service_app

DESCRIPTION = """Content library, approval workflow and training for Chorus.

Editors and admins create drafts and publish them; advocates submit their own content, which waits
for review; editors publish or reject it with a reason. Every transition emits an event on
`chorus.content`; course completions and policy acknowledgements go to `chorus.training`.

Audience: the library shows an advocate the items whose audience includes them. This service does
not own advocate profiles, so the caller's team, department and location are read from the JWT
claims `team`, `department` and `location` when present; a caller without such a claim sees only
items whose audience leaves that dimension empty.
"""


def create_app(settings: ContentSettings | None = None) -> FastAPI:
    settings = settings or ContentSettings()

    async def wire(runtime: Runtime) -> Wiring:
        store = ContentStore(runtime.db)
        service = ContentService(store, runtime.outbox)
        return Wiring(
            service=service,
            subscriptions=[build_subscription(service)],
            periodic=[
                # Expiry archives items and tells the other services (content.archived): a
                # transition with events, which a TTL index (it only deletes) cannot do.
                Periodic("content-expiry-sweeper", settings.content_sweep_interval_s, service.sweep_expired),
            ],
        )

    return create_service_app(
        name="content",
        settings=settings,
        routers=ROUTERS,
        indexes=INDEXES,
        wire=wire,
        outbox_collections=OUTBOX_COLLECTIONS,
        description=DESCRIPTION,
    )
