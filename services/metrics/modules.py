"""The metrics service's modules, wired together once: by main.py, rebuild.py and the benchmarks."""

from __future__ import annotations

from dataclasses import dataclass

from pymongo.asynchronous.database import AsyncDatabase

from services.metrics.analytics.service import AnalyticsService
from services.metrics.api_keys.service import ApiKeyService
from services.metrics.api_keys.store import ApiKeyStore
from services.metrics.attribution.service import AttributionService
from services.metrics.attribution.store import AttributionStore
from services.metrics.goals.service import GoalService
from services.metrics.goals.store import GoalStore
from services.metrics.org_settings.service import OrgSettingsService
from services.metrics.org_settings.store import OrgSettingsStore
from services.metrics.projections.service import ProjectionService
from services.metrics.projections.store import ProjectionStore
from services.metrics.settings import MetricsSettings
from services.metrics.surveys.service import SurveyService
from services.metrics.surveys.store import SurveyStore
from shared.clock import Clock, utc_now
from shared.mongo import Document
from shared.outbox import Outbox


@dataclass(frozen=True)
class MetricsModules:
    settings: MetricsSettings
    projections: ProjectionService
    org_settings: OrgSettingsService
    api_keys: ApiKeyService
    attribution: AttributionService
    analytics: AnalyticsService
    surveys: SurveyService
    goals: GoalService

    @classmethod
    def build(
        cls, settings: MetricsSettings, db: AsyncDatabase[Document], outbox: Outbox, clock: Clock = utc_now
    ) -> MetricsModules:
        org_settings = OrgSettingsService(settings, OrgSettingsStore(db))
        projections = ProjectionService(settings, ProjectionStore(db), org_settings)
        analytics = AnalyticsService(settings, projections, org_settings, clock)
        surveys = SurveyService(
            SurveyStore(db), settings.survey_respondent_secret.encode(), settings.survey_min_responses, clock
        )
        return cls(
            settings=settings,
            projections=projections,
            org_settings=org_settings,
            api_keys=ApiKeyService(ApiKeyStore(db), outbox, clock),
            attribution=AttributionService(
                AttributionStore(db),
                projections,
                org_settings,
                outbox,
                clock,
                click_wait_s=settings.conversion_click_wait_s,
            ),
            analytics=analytics,
            surveys=surveys,
            goals=GoalService(GoalStore(db), analytics, surveys, clock),
        )
