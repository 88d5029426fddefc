"""The content service's app. Nothing connects at import: see shared/app.py for the lifespan."""

from __future__ import annotations

from fastapi import FastAPI

from services.content.audience import store as audience_store
from services.content.audience.service import AudienceService
from services.content.handlers import build_subscription
from services.content.library import api as library_api
from services.content.library import store as library_store
from services.content.library.service import LibraryService
from services.content.program import api as program_api
from services.content.program import store as program_store
from services.content.program.service import ProgramService
from services.content.settings import ContentSettings
from services.content.training import api as training_api
from services.content.training import store as training_store
from services.content.training.service import TrainingService
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

# The version of this API's OpenAPI document: raised with every release of it (a minor for
# something new, a patch for wording; docs/openapi/README.md, "Versions").
API_VERSION = "1.4.0"

ROUTERS = [library_api.content, program_api.settings_router, training_api.policy, training_api.courses]
INDEXES = [*audience_store.INDEXES, *library_store.INDEXES, *program_store.INDEXES, *training_store.INDEXES]
MIGRATIONS = [*library_store.MIGRATIONS, *program_store.MIGRATIONS, *training_store.MIGRATIONS]
OUTBOX_COLLECTIONS = (
    *program_store.OUTBOX_COLLECTIONS,
    *training_store.OUTBOX_COLLECTIONS,
    *library_store.OUTBOX_COLLECTIONS,
)


def create_app(settings: ContentSettings | None = None) -> FastAPI:
    settings = settings or ContentSettings()

    async def wire(runtime: Runtime) -> Wiring:
        training = TrainingService(training_store.TrainingStore(runtime.db), runtime.outbox)
        program = ProgramService(program_store.ProgramStore(runtime.db), training, runtime.outbox)
        audiences = AudienceService(audience_store.AudienceStore(runtime.db))
        library = LibraryService(
            library_store.LibraryStore(runtime.db), program, runtime.outbox, audiences=audiences
        )
        return Wiring(
            service=library,
            subscriptions=[build_subscription(library, training, program, audiences)],
            periodic=[
                # Expiry archives items and tells the other services (content.archived): a
                # transition with events, which a TTL index (it only deletes) cannot do.
                Periodic("content-expiry-sweeper", settings.content_sweep_interval_s, library.sweep_expired),
            ],
            state={"library": library, "program": program, "training": training},
        )

    return create_service_app(
        name="content",
        settings=settings,
        version=API_VERSION,
        routers=ROUTERS,
        indexes=INDEXES,
        wire=wire,
        outbox_collections=OUTBOX_COLLECTIONS,
        migrations=MIGRATIONS,
        description=DESCRIPTION,
    )
