"""The recognition service's app: its modules wired together. Nothing connects at import: see
shared/app.py for the lifespan.

- rules: the scoring rules (versions);              profiles: advocates as sharing announces them;
- points: events scored into the ledger, accounts;  badges: achievements and credentials;
- leaderboards: boards and standings;               rewards: catalogue, redemptions, fulfilment;
- engagement: kudos and personal goals.          api_keys: the organisations' keys (fulfilment).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI
from pymongo.asynchronous.database import AsyncDatabase

from services.recognition.badges import api as badges_api
from services.recognition.badges.service import BadgeService
from services.recognition.badges.store import AWARDS, BadgeStore
from services.recognition.badges.store import INDEXES as BADGE_INDEXES
from services.recognition.badges.store import MIGRATIONS as BADGE_MIGRATIONS
from services.recognition.engagement import api as engagement_api
from services.recognition.engagement.service import EngagementService
from services.recognition.engagement.store import INDEXES as ENGAGEMENT_INDEXES
from services.recognition.engagement.store import MIGRATIONS as ENGAGEMENT_MIGRATIONS
from services.recognition.engagement.store import EngagementStore
from services.recognition.handlers import build_subscription
from services.recognition.leaderboards import api as leaderboards_api
from services.recognition.leaderboards.service import LeaderboardService
from services.recognition.leaderboards.store import INDEXES as BOARD_INDEXES
from services.recognition.leaderboards.store import BoardStore
from services.recognition.points import api as points_api
from services.recognition.points.service import PointsService
from services.recognition.points.store import INDEXES as POINTS_INDEXES
from services.recognition.points.store import LEDGER, PointsStore
from services.recognition.points.store import MIGRATIONS as POINTS_MIGRATIONS
from services.recognition.profiles.service import ProfileService
from services.recognition.profiles.store import ERASED, ProfileStore
from services.recognition.profiles.store import INDEXES as PROFILE_INDEXES
from services.recognition.rewards import api as rewards_api
from services.recognition.rewards.service import RewardService
from services.recognition.rewards.store import INDEXES as REWARD_INDEXES
from services.recognition.rewards.store import MIGRATIONS as REWARD_MIGRATIONS
from services.recognition.rewards.store import REDEMPTIONS, WEBHOOKS, RewardStore
from services.recognition.rules import api as rules_api
from services.recognition.rules.service import RulesService
from services.recognition.rules.store import INDEXES as RULES_INDEXES
from services.recognition.rules.store import RulesStore
from services.recognition.settings import RecognitionSettings
from shared.api_keys import KnownKeys
from shared.app import Periodic, Runtime, Wiring, create_service_app
from shared.mongo import Document, IndexSpec
from shared.outbox import Outbox
from shared.settings import ChorusSettings
from shared.vault import erasure_markers_expire
from shared.webhooks.sealing import SecretBox, reseal

DESCRIPTION = (
    "Points ledger, badges (Open Badges 3.0), leaderboards, rewards and redemptions, kudos and personal "
    "goals. Points come from events (shares, verified shares, clicks, leads, sales, training, own content) "
    "scored by per-organisation rules."
)

# Collections whose documents may carry an outbox (shared/outbox.py): ledger entries
# (chorus.reward.granted), badge awards (chorus.badge.awarded), redemptions (chorus.reward.redeemed).
OUTBOX_COLLECTIONS = (LEDGER, AWARDS, REDEMPTIONS)

# The version of this API's OpenAPI document: raised with every release of it (a minor for
# something new, a patch for wording; docs/openapi/README.md, "Versions").
API_VERSION = "1.7.0"

INDEXES: list[IndexSpec] = [
    *RULES_INDEXES,
    *POINTS_INDEXES,
    *BOARD_INDEXES,
    *PROFILE_INDEXES,
    *BADGE_INDEXES,
    *REWARD_INDEXES,
    *ENGAGEMENT_INDEXES,
]

ROUTERS = [
    rules_api.router,
    points_api.router,
    leaderboards_api.router,
    badges_api.router,
    rewards_api.router,
    engagement_api.router,
]


@dataclass(frozen=True)
class Recognition:
    """The service's modules, each the one entry point to its concept."""

    rules: RulesService
    profiles: ProfileService
    leaderboards: LeaderboardService
    badges: BadgeService
    points: PointsService
    rewards: RewardService
    engagement: EngagementService
    api_keys: KnownKeys


def recognition(
    db: AsyncDatabase[Document], outbox: Outbox, settings: RecognitionSettings, box: SecretBox
) -> Recognition:
    """Every module, each given the modules it calls."""
    rules = RulesService(RulesStore(db))
    profiles = ProfileService(ProfileStore(db), settings)
    leaderboards = LeaderboardService(
        BoardStore(db), rules, profiles, max_age_s=settings.leaderboard_max_age_s
    )
    badges = BadgeService(
        BadgeStore(db),
        outbox,
        rules,
        profiles,
        image_base_url=settings.badge_image_base_url,
        public_base_url=settings.public_base_url,
    )
    points = PointsService(
        PointsStore(db),
        outbox,
        rules,
        profiles,
        badges,
        leaderboards,
        relay_grace_s=settings.relay_grace_s,
    )
    rewards = RewardService(RewardStore(db, box), outbox, points, settings)
    engagement = EngagementService(
        EngagementStore(db), rules, points, profiles, relay_grace_s=settings.relay_grace_s
    )
    # An erasure reaches every module that holds the advocate's data.
    profiles.erasers = (leaderboards, points, rewards, engagement, badges, rules)
    return Recognition(rules, profiles, leaderboards, badges, points, rewards, engagement, KnownKeys(db))


def create_app(settings: ChorusSettings | None = None) -> FastAPI:
    if settings is None:
        settings = RecognitionSettings()
    elif not isinstance(settings, RecognitionSettings):
        settings = RecognitionSettings(**settings.model_dump())
    recognition_settings = settings
    box = SecretBox.of(settings)  # seals the fulfilment webhook's secret; its keys reseal at start

    async def wire(runtime: Runtime) -> Wiring:
        service = recognition(runtime.db, runtime.outbox, recognition_settings, box)
        every_s = recognition_settings.relay_every_s
        return Wiring(
            service=service,
            subscriptions=[build_subscription(service)],
            periodic=[
                # From the start: a replica restarted after a crash finishes what it left half
                # done at once. Their queries read only pending work (partial indexes).
                Periodic("recognition-relay", every_s, service.points.relay),
                Periodic("recognition-redemptions-relay", every_s, service.rewards.relay),
                Periodic("recognition-kudos-relay", every_s, service.engagement.relay),
                Periodic(
                    "recognition-webhooks",
                    recognition_settings.webhook_every_s,
                    service.rewards.deliver_webhooks,
                ),
            ],
            api_key_resolver=service.api_keys.resolver(),
            on_stop=[service.leaderboards.close, service.rewards.webhooks.close],
            state={
                "rules": service.rules,
                "points": service.points,
                "leaderboards": service.leaderboards,
                "badges": service.badges,
                "rewards": service.rewards,
                "engagement": service.engagement,
            },
        )

    return create_service_app(
        name="recognition",
        settings=settings,
        version=API_VERSION,
        routers=ROUTERS,
        webhooks=[rewards_api.webhooks],
        indexes=INDEXES,
        wire=wire,
        outbox_collections=OUTBOX_COLLECTIONS,
        migrations=[
            *POINTS_MIGRATIONS,
            *BADGE_MIGRATIONS,
            *REWARD_MIGRATIONS,
            *ENGAGEMENT_MIGRATIONS,
            reseal(WEBHOOKS, box),
            erasure_markers_expire(ERASED, settings),
        ],
        description=DESCRIPTION,
    )
