"""The metrics service's app. Nothing connects at import: see shared/app.py for the lifespan."""

from __future__ import annotations

from fastapi import FastAPI, Request

from services.metrics.analytics import api as analytics_api
from services.metrics.api_keys import api as api_keys_api
from services.metrics.api_keys import store as api_keys_store
from services.metrics.api_keys.store import INDEXES as API_KEY_INDEXES
from services.metrics.attribution import api as attribution_api
from services.metrics.attribution import store as attribution_store
from services.metrics.attribution.store import INDEXES as ATTRIBUTION_INDEXES
from services.metrics.goals import api as goals_api
from services.metrics.goals import store as goals_store
from services.metrics.handlers import (
    build_attribution_subscription,
    build_subscription,
    build_webhooks_subscription,
)
from services.metrics.modules import MetricsModules
from services.metrics.org_settings import api as org_settings_api
from services.metrics.org_settings import store as org_settings_store
from services.metrics.org_settings.store import INDEXES as ORG_SETTINGS_INDEXES
from services.metrics.projections.store import ERASED_ADVOCATES
from services.metrics.projections.store import INDEXES as PROJECTION_INDEXES
from services.metrics.settings import MetricsSettings
from services.metrics.surveys import api as surveys_api
from services.metrics.surveys import store as surveys_store
from services.metrics.surveys.store import INDEXES as SURVEY_INDEXES
from services.metrics.webhooks import api as webhooks_api
from services.metrics.webhooks import store as webhooks_store
from services.metrics.webhooks.service import RESUME_REPLAYS_EVERY_S, WebhookService
from services.metrics.webhooks.store import INDEXES as WEBHOOK_INDEXES
from services.metrics.webhooks.store import WebhookStore
from shared.app import Periodic, Runtime, Wiring, create_service_app
from shared.auth import ResolvedKey
from shared.vault import erasure_markers_expire
from shared.webhooks.engine import DeliveryStore
from shared.webhooks.sealing import SecretBox, reseal

DESCRIPTION = (
    "Attribution from click to revenue: projections of shares, clicks and conversions, the "
    "conversions API for websites and CRMs, funnel analytics, program goals and surveys."
)
# The version of this API's OpenAPI document: raised with every release of it (a minor for
# something new, a patch for wording; docs/openapi/README.md, "Versions").
API_VERSION = "1.9.0"

# In the order the API lists them.
ROUTERS = [
    attribution_api.router,
    api_keys_api.router,
    analytics_api.router,
    org_settings_api.router,
    goals_api.router,
    surveys_api.router,
    webhooks_api.router,
]
# Collections whose documents may carry an outbox (shared/outbox.py): conversion claims
# (chorus.conversions), API keys (chorus.access).
OUTBOX_COLLECTIONS = attribution_store.OUTBOX_COLLECTIONS + api_keys_store.OUTBOX_COLLECTIONS
INDEXES = (
    PROJECTION_INDEXES
    + ORG_SETTINGS_INDEXES
    + API_KEY_INDEXES
    + ATTRIBUTION_INDEXES
    + goals_store.INDEXES
    + SURVEY_INDEXES
    + WEBHOOK_INDEXES
)


def create_app(settings: MetricsSettings | None = None) -> FastAPI:
    settings = settings or MetricsSettings()

    box = SecretBox.of(settings)

    async def wire(runtime: Runtime) -> Wiring:
        metrics = MetricsModules.build(settings, runtime.db, runtime.outbox)

        async def resolve_api_key(request: Request, key_id: str, secret: str) -> ResolvedKey | None:
            return await metrics.api_keys.resolve(key_id, secret)

        webhooks = WebhookService(
            settings,
            WebhookStore(runtime.db, box),
            DeliveryStore(runtime.db),
            retry_base_s=settings.webhook_retry_base_s,
            timeout_s=settings.webhook_timeout_s,
            # Plain http to a local receiver is for development only.
            allow_insecure_loopback=settings.environment != "prod",
            vault=runtime.vault,
        )

        return Wiring(
            service=metrics,
            subscriptions=[
                build_subscription(metrics),
                build_attribution_subscription(metrics),
                build_webhooks_subscription(webhooks),
            ],
            periodic=[
                Periodic(
                    "metrics-goal-snapshots", settings.goal_snapshot_every_s, metrics.goals.snapshot_goals
                ),
                Periodic(
                    "metrics-webhook-dispatch", settings.webhook_dispatch_every_s, webhooks.dispatch_due
                ),
                Periodic("metrics-webhook-replays", RESUME_REPLAYS_EVERY_S, webhooks.resume_replays),
            ],
            api_key_resolver=resolve_api_key,
            on_stop=[webhooks.close],
            state={"webhooks": webhooks},
        )

    return create_service_app(
        name="metrics",
        settings=settings,
        version=API_VERSION,
        routers=ROUTERS,
        webhooks=[webhooks_api.webhooks],
        indexes=INDEXES,
        wire=wire,
        outbox_collections=OUTBOX_COLLECTIONS,
        migrations=[
            *attribution_store.MIGRATIONS,
            *goals_store.MIGRATIONS,
            *api_keys_store.MIGRATIONS,
            *org_settings_store.MIGRATIONS,
            *webhooks_store.MIGRATIONS,
            *surveys_store.MIGRATIONS,
            surveys_store.key_respondents(settings.survey_respondent_secret.encode()),
            reseal(webhooks_store.ENDPOINTS, box),
            erasure_markers_expire(ERASED_ADVOCATES, settings),
        ],
        description=DESCRIPTION,
    )
