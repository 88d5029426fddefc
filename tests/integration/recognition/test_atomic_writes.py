"""Many writers at once on one document, each through its own client (its own connection pool),
as several replicas of recognition write: the interleavings that lose updates wherever a write
is a read and then a write (the store once serialised them with process-wide locks). Nothing
serialises them now but the database's atomic single-document updates, and every result below
is exact."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from services.recognition.badges.store import CONTENT_AUTHORS
from services.recognition.engagement.domain import Kudos
from services.recognition.engagement.store import KUDOS, EngagementStore
from services.recognition.handlers import build_subscription
from services.recognition.leaderboards.store import BOARDS, TEAM_BOARDS, BoardStore
from services.recognition.main import INDEXES, OUTBOX_COLLECTIONS, Recognition, recognition
from services.recognition.points import domain as points_domain
from services.recognition.points.domain import AccountChange, LedgerEntry, Scored, capped
from services.recognition.points.service import PointsService
from services.recognition.points.store import ACCOUNTS, DAILY, LEDGER, SHARES, PointsStore
from services.recognition.profiles.domain import Profile, is_erasure_token
from services.recognition.profiles.store import ProfileStore
from services.recognition.rewards.domain import Reward, placing
from services.recognition.rewards.store import REDEMPTIONS, RewardStore
from services.recognition.rules.domain import Campaign, Rules
from services.recognition.settings import RecognitionSettings
from shared.clock import utc_now as now
from shared.errors import InvalidInput
from shared.events import Event
from shared.events.advocates import AdvocateUpdated
from shared.events.clicks import ClickRecorded
from shared.events.content import ContentPublished
from shared.messaging import EventProducer
from shared.mongo import APPLIED_WINDOW, Document
from shared.outbox import Outbox
from shared.settings import DEV_WEBHOOK_SECRET_KEY
from shared.webhooks.sealing import SecretBox
from tests.helpers import new_org, one_database_through_clients
from tests.integration.recognition.conftest import share_made

pytestmark = pytest.mark.integration

CLIENTS = 4


@pytest.fixture(scope="module")
def database(recognition_settings: RecognitionSettings) -> str:
    # A database of this module's own: the made-up ledger entries below must not reach the
    # relay of a service another module runs.
    return f"{recognition_settings.mongo_db_prefix}_recognition_atomic_writes"


class RecognitionStore:
    """Recognition's module stores over one client."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.points = PointsStore(db)
        self.boards = BoardStore(db)
        self.rewards = RewardStore(db, SecretBox([DEV_WEBHOOK_SECRET_KEY]))
        self.engagement = EngagementStore(db)
        self.profiles = ProfileStore(db)


@pytest.fixture(scope="module")
async def stores(
    recognition_settings: RecognitionSettings, database: str
) -> AsyncIterator[list[RecognitionStore]]:
    """The recognition stores over CLIENTS separate clients of one database."""
    async with one_database_through_clients(recognition_settings, database, INDEXES, CLIENTS) as dbs:
        yield [RecognitionStore(db) for db in dbs]


async def at_once(
    stores: list[RecognitionStore], n: int, call: Callable[[RecognitionStore, int], Awaitable[Any]]
) -> list[Any]:
    """`call(store, i)` for i in range(n), all at once, spread over the clients."""
    return await asyncio.gather(*(call(stores[i % len(stores)], i) for i in range(n)))


async def test_concurrent_grants_and_their_redeliveries_count_once_on_the_account_and_boards(
    stores: list[RecognitionStore],
) -> None:
    org = new_org()
    points = {f"e{i}": i % 7 + 1 for i in range(100)}
    # Every entry twice, side by side: a redelivery racing the original, in another replica.
    entries = [entry for entry in points for _ in range(2)]

    async def grant(store: RecognitionStore, i: int) -> bool:
        entry = entries[i]
        applied, _, _ = await asyncio.gather(
            store.points.apply_to_account(
                org,
                "a",
                entry,
                balance=points[entry],
                lifetime=points[entry],
                change=AccountChange({"counters.shares": 1}, {}),
            ),
            store.boards.add(org, "all", "a", "red", True, entry, points[entry]),
            store.boards.add_to_team(org, "all", "red", entry, points[entry]),
        )
        return applied

    applied = await at_once(stores, len(entries), grant)

    total = sum(points.values())
    assert applied.count(True) == len(points)
    account = await stores[0].points.account(org, "a")
    assert account is not None
    assert (account.balance, account.lifetime, account.counters) == (total, total, {"shares": 100})
    assert (account.written_off, account.badges, account.courses) == (0, [], [])
    stored = await stores[0].db[ACCOUNTS].find_one({"org": org})
    assert stored is not None
    assert sorted(stored["applied_events"]) == sorted(points)
    assert [(b["advocate_id"], b["points"]) for b in await stores[1].boards.entries(org, "all")] == [
        ("a", total)
    ]
    assert list((await stores[2].boards.team_totals(org, "all")).items()) == [("red", total)]


async def test_the_applied_ids_window_keeps_the_latest_ones(stores: list[RecognitionStore]) -> None:
    org = new_org()
    for i in range(APPLIED_WINDOW + 20):
        await stores[i % CLIENTS].boards.add(org, "all", "a", None, True, f"e{i}", 1)
    board = await stores[0].db[BOARDS].find_one({"org": org})
    assert board is not None
    assert board["points"] == APPLIED_WINDOW + 20
    assert board["applied_events"] == [f"e{i}" for i in range(20, APPLIED_WINDOW + 20)]


async def test_concurrent_spends_take_exactly_what_the_balance_affords_and_never_more(
    stores: list[RecognitionStore],
) -> None:
    org = new_org()
    await stores[0].points.apply_to_account(org, "a", "earned", balance=200, lifetime=200)
    seen: list[int] = []
    spending = True

    async def watch() -> None:
        while spending:
            account = await stores[3].points.account(org, "a")
            assert account is not None
            seen.append(account.balance)
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    spent = await at_once(stores, 50, lambda store, i: store.points.spend(org, "a", f"spend-{i}", 20))
    spending = False
    await watcher

    assert spent.count(True) == 10
    account = await stores[0].points.account(org, "a")
    assert account is not None and account.balance == 0
    assert seen and min(seen) >= 0


async def test_concurrent_debits_beyond_the_balance_write_off_exactly_the_difference(
    stores: list[RecognitionStore],
) -> None:
    org = new_org()
    await stores[0].points.apply_to_account(org, "a", "earned", balance=30, lifetime=30)

    async def debit(store: RecognitionStore, i: int) -> bool:
        return await store.points.apply_to_account(org, "a", f"reversal-{i % 5}", balance=-20, lifetime=-20)

    applied = await at_once(stores, 10, debit)  # five debits, each sent twice

    assert applied.count(True) == 5
    account = await stores[0].points.account(org, "a")
    assert account is not None
    assert (account.balance, account.written_off, account.lifetime) == (0, 70, -70)


async def test_concurrent_reservations_take_exactly_the_stock_and_the_budget(
    stores: list[RecognitionStore],
) -> None:
    org = new_org()

    def mug(reward_id: str, stock: int | None, budget_left_cents: int | None, price_cents: int) -> Reward:
        return Reward(
            reward_id,
            "Mug",
            "",
            1,
            stock,
            price_cents,
            budget_left_cents,
            budget_left_cents,
            "EUR",
            True,
            now(),
        )

    limited_stock = mug(f"rwd-stock-{org}", stock=7, budget_left_cents=None, price_cents=0)
    limited_budget = mug(f"rwd-budget-{org}", stock=None, budget_left_cents=1000, price_cents=300)
    for reward in (limited_stock, limited_budget):
        await stores[0].rewards.insert_reward(org, reward)

    def reserve(reward: Reward, prefix: str = "rdm") -> Callable[[RecognitionStore, int], Awaitable[bool]]:
        return lambda store, i: store.rewards.reserve(org, reward, f"{prefix}-{i}")

    taken_stock = await at_once(stores, 40, reserve(limited_stock))
    taken_budget = await at_once(stores, 40, reserve(limited_budget))

    assert (taken_stock.count(True), taken_budget.count(True)) == (7, 3)
    stock = await stores[0].rewards.reward(org, limited_stock.id)
    budget = await stores[0].rewards.reward(org, limited_budget.id)
    assert stock is not None and budget is not None
    assert (stock.stock, stock.stock_taken) == (0, 7)
    assert (budget.budget_left_cents, budget.spent_cents, budget.stock) == (100, 900, None)

    # Retries of the same redemptions: those that took a unit are told so, and nothing more is taken.
    assert await at_once(stores, 40, reserve(limited_stock)) == taken_stock
    stock = await stores[0].rewards.reward(org, limited_stock.id)
    assert stock is not None and (stock.stock, stock.stock_taken) == (0, 7)

    # Each reservation given back three times at once is given back once.
    holders = [f"rdm-{i}" for i, taken in enumerate(taken_budget) if taken]
    await at_once(
        stores,
        9,
        lambda store, i: store.rewards.release_reservation(
            org, limited_budget, placing(holders[i % 3], org, "a", limited_budget, now())
        ),
    )
    budget = await stores[0].rewards.reward(org, limited_budget.id)
    assert budget is not None
    assert (budget.budget_left_cents, budget.spent_cents, budget.stock_taken) == (1000, 0, 0)

    # What rejected redemptions give back, each returned three times at once: once.
    assert await at_once(stores, 3, reserve(limited_budget, "again")) == [True] * 3
    await at_once(
        stores,
        9,
        lambda store, i: store.rewards.return_stock(
            org, limited_budget, placing(f"again-{i % 3}", org, "a", limited_budget, now())
        ),
    )
    budget = await stores[0].rewards.reward(org, limited_budget.id)
    assert budget is not None
    assert (budget.budget_left_cents, budget.spent_cents, budget.stock_taken) == (1000, 0, 0)


async def test_a_stale_try_of_a_refused_redemption_takes_nothing(
    recognition_settings: RecognitionSettings, stores: list[RecognitionStore]
) -> None:
    # Two replicas' relays read the same redemption its request left placing. The first is
    # refused (20 points for a 30-point mug), gives the unit back and drops it; the advocate then
    # earns 20 more; the second goes on from its read. It once took the unit and the points again
    # and found no redemption to show (a NotFound that stopped its relay).
    org = new_org()
    reward = Reward("rwd-mug", "Mug", "", 30, 3, 0, None, None, "EUR", True, now())
    await stores[0].rewards.insert_reward(org, reward)
    await stores[0].points.apply_to_account(org, "a", "earned-1", balance=20, lifetime=20)
    stale = placing("rdm-1", org, "a", reward, now() - timedelta(minutes=5))
    await stores[0].rewards.begin_redemption(stale)
    first, second = (replica.rewards for replica in replicas(recognition_settings, stores[:2]))

    await first._finish_placing(stale)
    await stores[0].points.apply_to_account(org, "a", "earned-2", balance=20, lifetime=20)
    await second._finish_placing(stale)

    account = await stores[1].points.account(org, "a")
    left = await stores[1].rewards.reward(org, reward.id)
    assert account is not None and left is not None
    assert account.balance == 40
    assert (left.stock, left.stock_taken) == (3, 0)
    ledger = await stores[1].points.entries(org, "a", after=None, limit=50)
    assert sum(e.balance_delta for e in ledger if e.kind in ("redemption", "refund")) == 0
    assert await stores[1].rewards.redemption(org, stale.id) is None
    assert await stores[1].rewards.stale_redemptions(now()) == []  # nothing left for a relay


async def test_a_redemption_left_placing_takes_one_unit_however_many_were_redeemed_meanwhile(
    recognition_settings: RecognitionSettings, stores: list[RecognitionStore]
) -> None:
    """A redemption's request stopped after it reserved its unit; a crowd redeemed the reward at
    once before the relay finished it. The reward remembered its last 200 reservations only, so
    the relay found none of that redemption's and took a second unit, which nothing gave back."""
    org = new_org()
    reward = Reward("rwd-hoodie", "Hoodie", "", 10, 1000, 100, 100_000, 100_000, "EUR", True, now())
    await stores[0].rewards.insert_reward(org, reward)
    crowd = [f"colleague-{i}" for i in range(APPLIED_WINDOW + 50)]
    await at_once(
        stores,
        len(crowd) + 1,
        lambda store, i: store.points.apply_to_account(
            org, ([*crowd, "late"])[i], f"earned-{i}", balance=10, lifetime=10
        ),
    )
    stale = placing("rdm-late", org, "late", reward, now() - timedelta(minutes=5))
    await stores[0].rewards.begin_redemption(stale)
    assert await stores[0].rewards.reserve(org, reward, stale.id)  # then its request stopped

    services = replicas(recognition_settings, stores)
    await asyncio.gather(
        *(
            services[i % len(services)].rewards.request_redemption(org, advocate, reward.id, None)
            for i, advocate in enumerate(crowd)
        )
    )
    await services[0].rewards._finish_placing(stale)

    left = await stores[0].rewards.reward(org, reward.id)
    assert left is not None
    redeemed = len(crowd) + 1
    assert (left.stock, left.stock_taken) == (1000 - redeemed, redeemed)
    assert (left.budget_left_cents, left.spent_cents) == (100_000 - 100 * redeemed, 100 * redeemed)
    assert await stores[0].rewards.redemption(org, stale.id) is not None


async def test_kudos_given_while_their_receiver_is_erased_leave_nothing_naming_them(
    recognition_settings: RecognitionSettings, stores: list[RecognitionStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The giver's request found the receiver enrolled, then another replica erased them (their
    erasure event), then the request wrote the kudos: the receiver's id and the message to them
    stayed after the erasure, in the giver's sent kudos."""
    org = new_org()
    giving, erasing = replicas(recognition_settings, stores[:2])
    await stores[0].profiles.upsert(org, Profile("gone", "red", True, 0))
    read = giving.profiles.get

    async def read_then_erased(org: str, advocate_id: str) -> Profile | None:
        found = await read(org, advocate_id)
        await erasing.profiles.erase(org, advocate_id, now())
        return found

    monkeypatch.setattr(giving.profiles, "get", read_then_erased)
    with pytest.raises(InvalidInput) as refused:
        await giving.engagement.give_kudos(org, "giver", "gone", "thanks for the demo", None)
    assert refused.value.errors[0]["field"] == "to"
    monkeypatch.undo()
    assert await stores[1].db[KUDOS].count_documents({"org": org}) == 0
    assert (await stores[1].engagement.kudos_sent(org, "giver", after=None, limit=10)) == []


async def test_an_erasure_while_an_event_is_scored_leaves_nothing_naming_the_advocate(
    recognition_settings: RecognitionSettings, stores: list[RecognitionStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    org = new_org()
    scorer, eraser = replicas(recognition_settings, stores[:2])
    insert = scorer.points.store.insert_entry

    async def erased_first(entry: LedgerEntry, outbox: list[Document]) -> LedgerEntry:
        # Another replica erases "x" whole after the share's check that "x" is not erased,
        # before its ledger entry is written.
        await eraser.profiles.erase(org, "x", now())
        return await insert(entry, outbox)

    monkeypatch.setattr(scorer.points.store, "insert_entry", erased_first)
    shared = Event.create(share_made("s-x", "x", team="red"), tenant=org, source="/tests")
    await scorer.points.share_made(shared)

    db = stores[0].db
    for collection in (LEDGER, ACCOUNTS, SHARES, DAILY, BOARDS):
        assert await db[collection].count_documents({"org": org, "advocate_id": "x"}) == 0, collection
    # The amount stays, naming nobody; the team's boards no longer count it.
    [entry] = await db[LEDGER].find({"org": org}).to_list()
    assert is_erasure_token(entry["advocate_id"]) and entry["points"] > 0
    team_boards = await db[TEAM_BOARDS].find({"org": org}).to_list()
    assert team_boards and {d["points"] for d in team_boards} == {0}


async def test_an_entry_an_erasure_renamed_before_it_was_projected_is_projected_onto_no_one(
    recognition_settings: RecognitionSettings, stores: list[RecognitionStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    org = new_org()
    stopped, relay = replicas(recognition_settings, stores[:2])

    async def process_stops(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("the process stopped")

    # An entry written, its process stopped before projecting it; then "y" is erased.
    monkeypatch.setattr(stopped.points.store, "apply_to_account", process_stops)
    with pytest.raises(RuntimeError):
        await stopped.points.kudos_received(org, "y", "kds-1", now())
    await relay.profiles.erase(org, "y", now())
    [renamed] = await stores[1].points.entries(org, None, after=None, limit=10)
    assert is_erasure_token(renamed.advocate_id) and not renamed.projected

    await relay.points.finish(renamed)  # what the relay does with it

    for collection in (ACCOUNTS, BOARDS, TEAM_BOARDS):
        assert await stores[0].db[collection].count_documents({"org": org}) == 0, collection
    assert await stores[0].points.unprojected_entries(now()) == []


async def test_content_published_after_its_authors_erasure_records_no_author(
    recognition_settings: RecognitionSettings, stores: list[RecognitionStore]
) -> None:
    org = new_org()
    [replica] = replicas(recognition_settings, stores[:1])
    await replica.profiles.erase(org, "z", now())
    published = ContentPublished(
        content_id="c-z",
        content_type="article",
        title="Mine",
        url="https://example.com/mine",
        author_advocate_id="z",
        published_by="editor",
    )
    await replica.points.content_published(Event.create(published, tenant=org, source="/tests"))
    assert await stores[0].db[CONTENT_AUTHORS].count_documents({"org": org}) == 0
    assert await stores[0].db[LEDGER].count_documents({"org": org}) == 0


def replicas(settings: RecognitionSettings, stores: list[RecognitionStore]) -> list[Recognition]:
    """Recognition's modules, one set per client: replicas."""
    return [
        recognition(
            store.db,
            Outbox(store.db, OUTBOX_COLLECTIONS, EventProducer(settings)),
            settings,
            SecretBox.of(settings),
        )
        for store in stores
    ]


async def test_concurrent_capped_grants_fill_the_daily_cap_exactly_and_answer_retries_the_same(
    stores: list[RecognitionStore],
) -> None:
    org = new_org()

    def ten_under_195(used: int) -> int:
        return capped(10, daily_used=used, daily_cap=195, share_used=0, share_cap=None)

    async def grant(store: RecognitionStore, i: int) -> int:
        return await store.points.daily_grant(org, "a", "2026-12-05", f"e{i % 60}", ten_under_195)

    first = await at_once(stores, 60, grant)
    again = await at_once(stores, 120, grant)  # each entry retried twice, from any replica

    assert sum(first) == 195
    assert sorted(first) == [0] * 40 + [5] + [10] * 19
    assert again == first + first


def scorers(settings: RecognitionSettings, stores: list[RecognitionStore]) -> list[PointsService]:
    """Recognition's scoring, one per client: replicas."""
    return [replica.points for replica in replicas(settings, stores)]


def x5_rules(*, daily_cap: int | None) -> Rules:
    """A share scores 50, its verification 25, a unique click 5; a share may earn 50 in all."""
    week = now() - timedelta(days=3), now() + timedelta(days=3)
    campaign = Campaign(id="x5", name="x5", starts_at=week[0], ends_at=week[1], multiplier=5)
    return Rules(daily_cap=daily_cap, per_share_cap=50, campaigns=[campaign])


def shared_and_clicked(
    org: str, i: int, *, advocate: str | None = None, clicked_at: datetime | None = None
) -> list[Scored]:
    """What share s<i> (of advocate a<i> unless told) scores, and its first click, unique: three
    entries."""
    advocate = advocate or f"a{i}"
    share = Event.create(share_made(f"s{i}", advocate), tenant=org, source="/tests")
    click = ClickRecorded(
        click_id=f"k{i}",
        share_id=f"s{i}",
        advocate_id=advocate,
        content_id="c1",
        network="linkedin",
        clicked_at=clicked_at or now(),
        unique=True,
    )
    clicked = Event.create(click, tenant=org, source="/tests")
    return [points_domain.share_made(share), *points_domain.click_scores(clicked, verifies=True)]


async def test_a_share_and_its_clicks_scored_at_once_never_earn_more_than_the_per_share_cap(
    recognition_settings: RecognitionSettings, stores: list[RecognitionStore]
) -> None:
    # Catching up after an outage: a share (chorus.shares) and its first click (chorus.clicks)
    # are scored at the same moment, in several replicas, each event also redelivered. Under a x5
    # campaign the share asks 50, its verification 25 and the unique click 5: the share may earn
    # its cap of 50, and all of it, whatever the interleaving.
    org = new_org()
    replicas = scorers(recognition_settings, stores)
    await replicas[0].rules.publish(org, x5_rules(daily_cap=None), expected_version=0, by="boss")
    shares = 20
    items = [item for i in range(shares) for item in shared_and_clicked(org, i) for _ in range(2)]
    await asyncio.gather(*(replicas[n % CLIENTS].score(item) for n, item in enumerate(items)))

    for i in range(shares):
        account = await stores[0].points.account(org, f"a{i}")
        assert account is not None
        assert (f"a{i}", account.balance, account.counters) == (
            f"a{i}",
            50,
            {"shares": 1, "verified_shares": 1, "unique_clicks": 1},
        )
        entries, _ = await replicas[1].ledger(org, f"a{i}", None, 10)
        assert sum(e.points for e in entries) == 50
        share = await stores[0].points.share(org, f"s{i}")
        assert share is not None and share.points == 50


async def test_what_the_daily_cap_refuses_of_a_share_stays_free_for_its_later_clicks(
    recognition_settings: RecognitionSettings, stores: list[RecognitionStore]
) -> None:
    org = new_org()
    scoring = scorers(recognition_settings, stores)[0]
    rules = x5_rules(daily_cap=60)
    await scoring.rules.publish(org, rules, expected_version=0, by="boss")
    first, _, _ = shared_and_clicked(org, 1, advocate="a2")
    assert (await scoring.score(first)).points == 50  # the day has 10 left
    share, verified, click = shared_and_clicked(org, 2, clicked_at=now() + timedelta(days=1))
    # A crash after the caps were reserved and before the entry was written; the redelivery
    # gets the same grant and reserves nothing more.
    assert await scoring._capped(share, rules, 50) == 10
    assert (await scoring.score(share)).points == 10
    # The 40 the day refused stay the share's: tomorrow its clicks earn them.
    assert [(await scoring.score(item)).points for item in (verified, click)] == [25, 5]
    share_seen = await stores[0].points.share(org, "s2")
    assert share_seen is not None and share_seen.points == 40
    account = await stores[0].points.account(org, "a2")
    assert account is not None and account.balance == 90

    # Today's cap is full: another share and its clicks today get nothing, and leave nothing in
    # the share's document (a viral share's clicks would otherwise grow it without bound).
    assert [(await scoring.score(item)).points for item in shared_and_clicked(org, 3, advocate="a2")] == [
        0,
        0,
        0,
    ]
    stored = await stores[0].points.tenants.of(org, SHARES).find_one({"share_id": "s3"})
    assert stored is not None and stored.get("grants", {}) == {} and stored["points"] == 0


async def test_concurrent_kudos_take_exactly_the_weekly_allowance(stores: list[RecognitionStore]) -> None:
    org = new_org()

    def give(store: RecognitionStore, i: int) -> Awaitable[bool]:
        return store.engagement.take_kudos_allowance(org, "g", "2026-W49", 5, f"kds-{i}")

    taken = await at_once(stores, 30, give)
    assert taken.count(True) == 5
    assert await stores[0].engagement.kudos_given(org, "g", "2026-W49") == 5
    # Retries of the same kudos: those counted are told so, and nothing more is counted.
    assert await at_once(stores, 30, give) == taken
    assert await stores[0].engagement.kudos_given(org, "g", "2026-W49") == 5
    assert not await stores[0].engagement.take_kudos_allowance(org, "nobody", "2026-W49", 0, "kds-x")


async def test_a_share_is_verified_by_one_click_whatever_the_race(stores: list[RecognitionStore]) -> None:
    org = new_org()
    await stores[0].points.remember_share(org, "s1", "a", content_id="c1")
    verified = await at_once(
        stores, 20, lambda store, i: store.points.mark_share_verified(org, "s1", f"k{i}")
    )
    assert verified.count(True) == 1
    winner = f"k{verified.index(True)}"
    assert await stores[1].points.mark_share_verified(org, "s1", winner)  # the same click again
    assert not await stores[1].points.mark_share_verified(org, "missing-share", "k1")


async def test_boards_follow_the_consent_of_a_profile_applied_again_from_every_replica(
    recognition_settings: RecognitionSettings, stores: list[RecognitionStore]
) -> None:
    # The profile was stored, then the process died before the boards were hidden: the
    # redelivered profile, applied by several replicas at once, hides them all the same (no
    # replica has to learn from its update what the profile said before).
    org = new_org()
    for period in ("all", "2026-W49"):
        await stores[0].boards.add(org, period, "a", "red", True, f"e-{period}", 5)
    hidden = AdvocateUpdated(advocate_id="a", team="red", public_ranking_consent=False)
    await stores[0].profiles.upsert(org, Profile("a", "red", False, 0))
    # Each replica's handler of the profile event (services/recognition/handlers.py).
    handlers = [
        build_subscription(
            recognition(
                store.db,
                Outbox(store.db, OUTBOX_COLLECTIONS, EventProducer(recognition_settings)),
                recognition_settings,
                SecretBox.of(recognition_settings),
            )
        ).handlers[AdvocateUpdated.event_type]
        for store in stores
    ]

    def updated(profile: AdvocateUpdated) -> Event[AdvocateUpdated]:
        return Event.create(profile, tenant=org, source="/tests")

    await asyncio.gather(*(handle(updated(hidden)) for handle in handlers))

    for period in ("all", "2026-W49"):
        assert [(e["advocate_id"], e["visible"]) for e in await stores[1].boards.entries(org, period)] == [
            ("a", False)
        ]
    shown = hidden.model_copy(update={"public_ranking_consent": True})
    await asyncio.gather(*(handle(updated(shown)) for handle in handlers))
    assert [e["visible"] for e in await stores[2].boards.entries(org, "all")] == [True]


class FindCommands(monitoring.CommandListener):
    """Remembers the `find` commands a client sends."""

    def __init__(self) -> None:
        self.finds: list[Document] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.finds.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def plan_stages(plan: Any) -> list[tuple[str, str | None]]:
    """Every (stage, index name) in an explained plan, whatever its nesting."""
    found: list[tuple[str, str | None]] = []
    if isinstance(plan, dict):
        if "stage" in plan:
            found.append((plan["stage"], plan.get("indexName")))
        for value in plan.values():
            found += plan_stages(value)
    elif isinstance(plan, list):
        for value in plan:
            found += plan_stages(value)
    return found


async def test_the_relay_finds_pending_work_through_partial_indexes(
    recognition_settings: RecognitionSettings, database: str, stores: list[RecognitionStore]
) -> None:
    org = new_org()
    old, new = now() - timedelta(minutes=5), now()
    ledger: list[Document] = [
        {"_id": f"{org}-done", "projected": True, "created_at": old},
        {"_id": f"{org}-unprojected", "projected": False, "created_at": old},
        {"_id": f"{org}-too-young", "projected": False, "created_at": new},
    ]
    for i, entry in enumerate(ledger):
        entry.update(org=org, source_event_id=f"ev{i}", kind="share_made", advocate_id="a")
        # The rest of a ledger entry, as the store reads it.
        entry.update(
            points=1,
            balance_delta=1,
            lifetime_delta=1,
            reason="share made",
            source_event_type="chorus.share.made",
            occurred_at=old,
        )
        await stores[0].db[LEDGER].insert_one(entry)
    await (
        stores[0]
        .db[REDEMPTIONS]
        .insert_one(
            {
                "_id": f"{org}-rdm",
                "org": org,
                "advocate_id": "a",
                "reward_id": "r",
                "reward_name": "Mug",
                "cost": 1,
                "status": "approved",
                "created_at": old,
                "needs_relay": True,
                "updated_at": old,
            }
        )
    )

    kudos = [
        Kudos(f"{org}-kds-{name}", "a", "b", "thanks", "2026-W49", at, scored=scored)
        for name, at, scored in (("scored", old, True), ("unscored", old, False), ("too-young", new, False))
    ]
    for one in kudos:
        await stores[0].engagement.insert_kudos(org, one)

    listener = FindCommands()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        recognition_settings.mongo_url, tz_aware=True, event_listeners=[listener]
    )
    try:
        db = client[database]
        store = RecognitionStore(db)
        cutoff = now() - timedelta(minutes=1)
        ours = {
            "unprojected": [e.id for e in await store.points.unprojected_entries(cutoff)],
            "redemptions": [r.id for r in await store.rewards.stale_redemptions(cutoff)],
            "kudos": [k.id for _, k in await store.engagement.unscored_kudos(cutoff)],
        }
        assert ours == {
            "unprojected": [f"{org}-unprojected"],
            "redemptions": [f"{org}-rdm"],
            "kudos": [f"{org}-kds-unscored"],
        }
        plans = {}
        for find in listener.finds:
            query = {k: v for k, v in find.items() if k in ("find", "filter", "sort", "limit", "projection")}
            explained = await db.command({"explain": query, "verbosity": "queryPlanner"})
            plans[(find["find"], tuple(find["filter"]))] = plan_stages(
                explained["queryPlanner"]["winningPlan"]
            )
    finally:
        await client.close()

    expected_index = {
        (LEDGER, ("projected", "created_at")): "ledger_unprojected",
        (REDEMPTIONS, ("needs_relay", "updated_at")): "redemptions_to_relay",
        (KUDOS, ("scored", "created_at")): "kudos_to_score",
    }
    assert set(plans) == set(expected_index)
    for query, stages in plans.items():
        assert ("IXSCAN", expected_index[query]) in stages, (query, stages)
        assert "COLLSCAN" not in [stage for stage, _ in stages], (query, stages)
