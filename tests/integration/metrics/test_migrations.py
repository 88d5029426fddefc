"""Metrics' data in earlier shapes adopted at start: settings written before every query named the
organisation, survey answers kept under a plain hash of who answered, API keys made before the
other services learnt of keys from events, goals whose target was taken as infinite, snapshots of
deleted goals."""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from services.metrics.api_keys import domain as api_keys
from services.metrics.api_keys.store import API_KEYS, ApiKeyStore
from services.metrics.api_keys.store import MIGRATIONS as API_KEY_MIGRATIONS
from services.metrics.goals.domain import Goal
from services.metrics.goals.store import GOAL_SNAPSHOTS, GoalStore
from services.metrics.goals.store import MIGRATIONS as GOAL_MIGRATIONS
from services.metrics.org_settings.domain import EmvRates
from services.metrics.org_settings.store import MIGRATIONS, ORG_SETTINGS, OrgSettingsStore
from services.metrics.surveys import domain as surveys
from services.metrics.surveys.domain import Survey
from services.metrics.surveys.schemas import ResponseIn
from services.metrics.surveys.service import SurveyService
from services.metrics.surveys.store import SURVEY_RESPONSES, SurveyStore, key_respondents
from shared.auth import Principal
from shared.errors import Conflict
from shared.migrations import migrate
from shared.mongo import Document
from shared.outbox import OUTBOX
from shared.settings import ChorusSettings
from tests.helpers import scratch_database

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(settings: ChorusSettings) -> AsyncIterator[AsyncDatabase[Document]]:
    async with scratch_database(settings, "metrics_migrations") as db:
        yield db


async def test_settings_stored_without_their_org_are_adopted(db: AsyncDatabase[Document]) -> None:
    await db[ORG_SETTINGS].insert_one({"_id": "org-a", "cpc": "0.50", "cpm": "4", "currency": "EUR"})
    store = OrgSettingsStore(db)
    assert (await store.get("org-a")).rates.currency == "USD"  # unseen: the query names the org

    await migrate(db, MIGRATIONS)

    assert (await store.get("org-a")).rates == EmvRates(Decimal("0.50"), Decimal("4"), "EUR")
    await store.set_program_settings("org-a", 14, "Europe/Paris")
    assert (await store.get("org-a")).attribution_window_days == 14
    assert (await store.get("org-a")).time_zone == "Europe/Paris"
    assert await db[ORG_SETTINGS].count_documents({}) == 1


async def test_answers_kept_under_a_plain_hash_are_keyed_and_still_count_once(
    db: AsyncDatabase[Document],
) -> None:
    secret = b"k" * 32
    at = datetime(2026, 12, 1, tzinfo=UTC)
    store = SurveyStore(db)
    survey = Survey("s1", "org-a", "enps", "Pulse", [{"id": "q", "text": "Recommend?", "type": "nps"}], at)
    await store.insert(survey)
    plain = hashlib.sha256(b"org-a|ann").hexdigest()
    await db[SURVEY_RESPONSES].insert_one(
        {"_id": f"s1|{plain}", "org": "org-a", "survey_id": "s1", "respondent": plain, "answers": {"q": 9}}
        | {"created_at": at}
    )
    migration = key_respondents(secret)

    assert await migration.run(db) == 1
    assert await migration.run(db) == 0
    [stored] = await db[SURVEY_RESPONSES].find({}).to_list()
    assert stored["respondent"] == surveys.respondent_key(secret, "org-a", "ann") != plain
    assert stored["_id"] == f"s1|{stored['respondent']}" and stored["answers"] == {"q": 9}

    service = SurveyService(store, secret, min_responses=5)
    ann = Principal("ann", "org-a", frozenset({"advocate"}))
    with pytest.raises(Conflict):
        await service.respond(ann, "s1", ResponseIn(answers={"q": 3}))
    await service.erase_respondent("org-a", "ann")
    assert (await db[SURVEY_RESPONSES].find_one({}) or {}).get("respondent", "absent") is None


async def test_keys_made_before_keys_were_announced_are_announced_once(db: AsyncDatabase[Document]) -> None:
    at = datetime(2026, 11, 1, tzinfo=UTC)
    old = {"org": "org-a", "name": "crm", "secret_hash": "ab" * 32, "created_at": at}
    await db[API_KEYS].insert_many(
        [{"_id": "k1", **old}, {"_id": "k2", **old, "revoked_at": at, "scopes": ["conversions:write"]}]
    )
    key_store = ApiKeyStore(db)
    fresh, _ = api_keys.issue(
        Principal("boss", "org-a", frozenset({"admin"})), "new", ("scim:provision",), None, at
    )
    await key_store.insert(fresh, api_keys.issued(fresh))

    await migrate(db, API_KEY_MIGRATIONS)
    assert await API_KEY_MIGRATIONS[0].run(db) == 0  # a second replica's run changes nothing

    queued = {
        doc["_id"]: [json.loads(r["event"])["type"] for r in doc[OUTBOX]]
        async for doc in db[API_KEYS].find({})
    }
    assert queued == {
        "k1": ["chorus.api_key.issued"],
        "k2": ["chorus.api_key.issued", "chorus.api_key.revoked"],
        fresh.key_id: ["chorus.api_key.issued"],  # its own, from when it was made
    }
    k1 = await key_store.by_id("k1")
    assert k1 is not None and k1.scopes == ("conversions:write", "surveys:respond")  # what keys could do then


async def test_a_goal_taken_with_an_infinite_target_gets_the_largest_float(
    db: AsyncDatabase[Document],
) -> None:
    """Requests took `"target": Infinity` until ef38594; such a goal would now fail its answer."""
    store = GoalStore(db)
    endless, plain = (
        Goal(
            id,
            "org-a",
            "Reach",
            "clicks",
            target,
            date(2026, 1, 1),
            date(2026, 3, 31),
            None,
            None,
            None,
            None,
            datetime(2026, 1, 1, tzinfo=UTC),
            "ann",
        )
        for id, target in (("g1", math.inf), ("g2", 500.0))
    )
    await store.insert(endless)
    await store.insert(plain)

    await migrate(db, GOAL_MIGRATIONS)

    assert (await store.get("org-a", "g1")) == replace(endless, target=sys.float_info.max)
    assert (await store.get("org-a", "g2")) == plain


async def test_snapshots_left_by_goals_deleted_before_go_and_the_others_stay(
    db: AsyncDatabase[Document],
) -> None:
    """Deleting a goal left its snapshots behind until the deletion took them too."""
    store = GoalStore(db)
    kept = Goal(
        "g1",
        "org-a",
        "Reach",
        "clicks",
        500.0,
        date(2026, 1, 1),
        date(2026, 3, 31),
        None,
        None,
        None,
        None,
        datetime(2026, 1, 1, tzinfo=UTC),
        "ann",
    )
    await store.insert(kept)
    deleted = replace(kept, id="g2")
    other_orgs = replace(kept, org="org-b")  # the same id in another organisation, deleted there
    for goal in (kept, deleted, other_orgs):
        for day in ("2026-01-01", "2026-01-02"):
            await db[GOAL_SNAPSHOTS].insert_one(
                {"_id": f"{goal.org}|{goal.id}|{day}", "org": goal.org, "goal_id": goal.id, "date": day}
                | {"value": 1.0, "enrolled": 3}
            )

    await migrate(db, GOAL_MIGRATIONS)

    assert [s.date for s in await store.snapshots("org-a", "g1")] == ["2026-01-01", "2026-01-02"]
    assert await store.snapshots("org-a", "g2") == []
    assert await store.snapshots("org-b", "g1") == []
