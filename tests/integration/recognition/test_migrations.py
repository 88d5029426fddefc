"""Recognition's stored data from before a change of shape, upgraded at start: the fulfilment
webhook stored before every query named the organisation, the markers of erasures from before
they expired, and text stored before requests refused control characters."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from services.recognition.badges.domain import BadgeDefinition
from services.recognition.badges.store import BADGE_DEFS, BadgeStore
from services.recognition.leaderboards.store import BOARDS, BoardStore
from services.recognition.profiles.store import ERASED
from services.recognition.rewards.store import MIGRATIONS, WEBHOOKS, RewardStore
from services.recognition.rules.domain import Kind, Rules, RuleVersion, score
from services.recognition.rules.store import RULES, RulesStore
from services.recognition.settings import RecognitionSettings
from shared.fields import AS_STORED
from shared.migrations import migrate
from shared.mongo import Document, create_client, joined_id
from shared.settings import DEV_WEBHOOK_SECRET_KEY, ChorusSettings
from shared.vault import erasure_markers_expire, forget_erasure_at
from shared.webhooks.engine import Target
from shared.webhooks.sealing import SecretBox
from tests.helpers import bearer, new_org, openapi_errors, scratch_database
from tests.integration.recognition.conftest import body

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(settings: ChorusSettings) -> AsyncIterator[AsyncDatabase[Document]]:
    async with scratch_database(settings, "recognition_migrations") as db:
        yield db


async def test_a_fulfilment_webhook_stored_without_its_org_is_adopted(db: AsyncDatabase[Document]) -> None:
    at = datetime.now(UTC)
    await db[WEBHOOKS].insert_one(
        {"_id": "org-a", "url": "https://x.example/h", "secret": "s1", "updated_at": at}
    )
    store = RewardStore(db, SecretBox([DEV_WEBHOOK_SECRET_KEY]))
    assert await store.webhook("org-a") is None  # unseen: the query names the org

    await migrate(db, MIGRATIONS)

    assert await store.webhook("org-a") == Target(url="https://x.example/h", secret="s1")
    await store.set_webhook("org-a", "https://y.example/h", "s2", at)
    assert await store.webhook("org-a") == Target(url="https://y.example/h", secret="s2")
    assert await db[WEBHOOKS].count_documents({}) == 1


async def test_markers_of_erasures_from_before_they_expired_expire_too(
    db: AsyncDatabase[Document], settings: ChorusSettings
) -> None:
    await db[ERASED].insert_one({"_id": "org-a:old", "org": "org-a"})
    kept_until = datetime(2027, 1, 1, tzinfo=UTC)
    await db[ERASED].insert_one({"_id": "org-a:new", "org": "org-a", "forget_at": kept_until})
    before = datetime.now(UTC) - timedelta(milliseconds=1)  # the store keeps milliseconds

    await migrate(db, [erasure_markers_expire(ERASED, settings)])

    old = await db[ERASED].find_one({"_id": "org-a:old"})
    assert old is not None and old["forget_at"].replace(tzinfo=UTC) >= forget_erasure_at(
        before, timedelta(seconds=settings.erasure_grace_s)
    )
    new = await db[ERASED].find_one({"_id": "org-a:new"})
    assert new is not None and new["forget_at"].replace(tzinfo=UTC) == kept_until


async def test_rules_and_badges_stored_before_text_refused_control_characters_still_read(
    db: AsyncDatabase[Document],
) -> None:
    """Requests refuse control characters since 1ba4826; what was stored before stays readable
    (shared/fields.py AS_STORED), or an organisation's scoring would stop at its rules."""
    at = datetime.now(UTC)
    old_words = {"id": "spring", "name": "Spring\tpush", "starts_at": at, "ends_at": at + timedelta(days=1)}
    with pytest.raises(ValidationError, match="must be one line"):
        Rules.model_validate({"campaigns": [old_words]})  # as a request would send them today
    rules = Rules.model_validate({"campaigns": [old_words]}, context=AS_STORED)
    badge = BadgeDefinition.model_validate(
        {
            "badge_id": "ten-shares",
            "name": "Ten\u0007shares",
            "description": "Shared ten times",
            "criteria": "Share ten items",
            "image_url": "https://img.example/ten.png",
            "metric": "shares",
            "threshold": 10,
        },
        context=AS_STORED,
    )
    rules_store, badge_store = RulesStore(db), BadgeStore(db)
    assert await rules_store.insert("org-a", RuleVersion(1, rules, "ann", at))
    assert await badge_store.insert_definition("org-a", badge, at)

    assert (await rules_store.latest("org-a")).rules.campaigns[0].name == "Spring\tpush"
    assert [b.name for b in await badge_store.definitions("org-a")] == ["Ten\u0007shares"]


async def test_campaign_times_stored_without_a_time_zone_read_as_utc(db: AsyncDatabase[Document]) -> None:
    """Requests took naive campaign times before they were refused; stored ones are read as UTC,
    so that the organisation's events score again instead of failing on the comparison."""
    naive = {
        "id": "spring",
        "name": "Spring",
        "starts_at": "2026-03-01T00:00:00",
        "ends_at": "2026-04-01T00:00:00",
    }
    await db[RULES].insert_one(
        {
            "_id": "org-a:1",
            "org": "org-a",
            "version": 1,
            "rules_json": json.dumps({"campaigns": [{**naive, "multiplier": 2.0}]}),
            "created_by": "ann",
            "created_at": datetime.now(UTC),
        }
    )
    rules = (await RulesStore(db).latest("org-a")).rules
    assert (rules.campaigns[0].starts_at, rules.campaigns[0].ends_at) == (
        datetime(2026, 3, 1, tzinfo=UTC),
        datetime(2026, 4, 1, tzinfo=UTC),
    )
    at = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
    assert score(rules, Kind.SHARE_MADE, at=at).points == 20


async def test_a_board_stored_before_it_kept_points_by_team_gives_them_to_its_last_team(
    db: AsyncDatabase[Document],
) -> None:
    """As an erasure read it before: the points not kept by team count for the board's team."""
    store = BoardStore(db)
    await db[BOARDS].insert_one(
        {
            "_id": joined_id("org-a", "all", "a"),
            "org": "org-a",
            "period": "all",
            "advocate_id": "a",
            "team": "red",
            "points": 30,
        }
    )
    await store.add("org-a", "all", "a", "blue", True, "e1", 5)  # counted since: kept by team
    await store.add("org-a", "week:2026-W10", "a", None, True, "e2", 7)  # a new board, no team
    await store.add("org-a", "week:2026-W10", "a", "a.$team", True, "e3", 4)
    standings = {s.period: s.teams for s in await store.standings_of("org-a", "a")}
    assert standings == {"all": {"blue": 30 + 5}, "week:2026-W10": {"a.$team": 4}}


async def test_a_badge_stored_before_text_refused_control_characters_is_listed_as_stored(
    client: httpx.AsyncClient, recognition_settings: RecognitionSettings
) -> None:
    """GET /v1/badges answers a definition as it was stored: re-checked as a request on its way
    out, one old name made the whole list a 500."""
    org = new_org()
    legacy = {
        "badge_id": "ten-shares",
        "name": "Ten\u0007shares",
        "description": "Shared ten times",
        "criteria": "Share ten items",
        "image_url": "https://img.example/ten.png",
        "metric": "shares",
        "threshold": 10,
        "alignments": [],
        "builtin": False,
    }
    mongo = create_client(recognition_settings)
    try:
        await mongo[recognition_settings.database_name("recognition")][BADGE_DEFS].insert_one(
            {
                "_id": joined_id(org, "ten-shares"),
                "org": org,
                "badge_id": "ten-shares",
                "definition_json": json.dumps(legacy),
                "created_at": datetime.now(UTC),
            }
        )
    finally:
        await mongo.close()

    listed = body(
        await client.get(
            "/v1/badges", headers=bearer(recognition_settings, org=org, sub="a", roles=["advocate"])
        )
    )
    [stored] = [b for b in listed["items"] if b["badge_id"] == "ten-shares"]
    assert stored == legacy
    # The released document's one mismatch is the one it warns of (docs/openapi/README.md, "Text
    # in requests"): a name stored before its pattern.
    at = listed["items"].index(stored)
    assert [e.split(":")[0] for e in openapi_errors("recognition", "BadgeDefinitionPage", listed)] == [
        f"items/{at}/name"
    ]
