"""Rewards, redemptions, the fulfilment webhook, kudos and erasure, on the real broker and database."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from services.recognition.badges.store import CONTENT_AUTHORS
from services.recognition.engagement.domain import Kudos
from services.recognition.engagement.store import GOALS, EngagementStore
from services.recognition.leaderboards.domain import week_key
from services.recognition.points import domain as points_domain
from services.recognition.points.store import LEDGER, PointsStore
from services.recognition.rewards import domain as rewards_domain
from services.recognition.rewards.store import REDEMPTIONS, RewardStore
from services.recognition.rules.store import RULES
from services.recognition.settings import RecognitionSettings
from shared import idempotency
from shared.events import Event
from shared.events.advocates import AdvocateErased
from shared.events.content import ContentPublished
from shared.events.personal import is_pseudonym
from shared.events.recognition import RewardRedeemed
from shared.events.topics import SHARES
from shared.ids import id_for_request
from shared.messaging import EventProducer
from shared.messaging.producer import event_headers
from shared.mongo import create_client, joined_id
from shared.settings import DEV_WEBHOOK_SECRET_KEY, ChorusSettings
from shared.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from shared.webhooks.sealing import SecretBox
from tests.helpers import bearer, eventually, new_org, tap
from tests.integration.recognition.conftest import body, enrol_now, kudos_once_enrolled, publisher, share_made

pytestmark = pytest.mark.integration

SECRET = "fulfilment-secret-0123456789"


def as_(settings: ChorusSettings, org: str, sub: str, *roles: str) -> dict[str, str]:
    return bearer(settings, org=org, sub=sub, roles=list(roles) or ["advocate"])


async def give_points(
    client: httpx.AsyncClient, settings: ChorusSettings, org: str, to: str, kudos: int
) -> None:
    """Kudos worth 50 points each, given by a colleague: points without waiting for the broker."""
    admin = as_(settings, org, "boss", "admin")
    rules = body(await client.get("/v1/rules", headers=admin))
    if rules["version"] == 0:
        new_rules = {
            **rules["rules"],
            "kudos_weekly_allowance": 50,
            "points": {**rules["rules"]["points"], "kudos_received": 50},
        }
        body(await client.put("/v1/rules", headers=admin, json={"rules": new_rules}))
    await enrol_now(settings, org, to)
    await kudos_once_enrolled(client, "", as_(settings, org, f"peer-{to}"), to, "thanks #0")
    for i in range(1, kudos):
        body(
            await client.post(
                "/v1/kudos",
                headers=as_(settings, org, f"peer-{to}"),
                json={"to": to, "message": f"thanks #{i}"},
            )
        )


async def balance(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    return int(body(await client.get("/v1/me/points", headers=headers))["balance"])


async def add_reward(client: httpx.AsyncClient, settings: ChorusSettings, org: str, **fields: Any) -> str:
    reward = body(
        await client.post(
            "/v1/rewards", headers=as_(settings, org, "boss", "admin"), json={"name": "Mug", **fields}
        )
    )
    return str(reward["reward_id"])


async def test_a_rewards_retry_whose_first_answer_was_lost_finds_the_reward_its_first_try_made(
    client: httpx.AsyncClient, settings: ChorusSettings, stores: Stores
) -> None:
    org = new_org()
    admin = {**as_(settings, org, "boss", "admin"), "Idempotency-Key": "mug-1"}
    first = body(await client.post("/v1/rewards", headers=admin, json={"name": "Mug", "cost": 10}))
    # The answer lost (MongoDB failed over after the reward was written): the retry runs again.
    await stores.rewards.db[idempotency.COLLECTION].delete_many({"org": org})
    again = await client.post("/v1/rewards", headers=admin, json={"name": "Mug", "cost": 10})
    assert again.status_code == 201, again.text
    assert again.json() == first
    assert [r["reward_id"] for r in body(await client.get("/v1/rewards", headers=admin))["items"]] == [
        first["reward_id"]
    ]


async def test_redemption_refused_for_too_few_points_out_of_stock_or_over_budget(
    client: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    org = new_org()
    me = as_(settings, org, "a")
    await give_points(client, settings, org, "a", 2)  # 100 points
    assert await balance(client, me) == 100

    expensive = await add_reward(client, settings, org, cost=500)
    too_few = await client.post(f"/v1/rewards/{expensive}/redemptions", headers=me)
    assert too_few.status_code == 409
    assert too_few.json()["type"].endswith("/insufficient-points")

    one_left = await add_reward(client, settings, org, cost=10, stock=1)
    body(await client.post(f"/v1/rewards/{one_left}/redemptions", headers=me))
    gone = await client.post(f"/v1/rewards/{one_left}/redemptions", headers=me)
    assert gone.status_code == 409
    assert gone.json()["type"].endswith("/out-of-stock")

    budgeted = await add_reward(client, settings, org, cost=10, price_cents=1000, budget_cents=1500)
    body(await client.post(f"/v1/rewards/{budgeted}/redemptions", headers=me))
    over = await client.post(f"/v1/rewards/{budgeted}/redemptions", headers=me)
    assert over.status_code == 409
    assert over.json()["type"].endswith("/over-budget")

    # Refusals took nothing: 100 - 10 - 10.
    assert await balance(client, me) == 80
    reward = body(await client.get(f"/v1/rewards/{budgeted}", headers=me))
    assert reward["budget_left_cents"] == 500
    assert body(await client.get(f"/v1/rewards/{one_left}", headers=me))["stock"] == 0
    missing = await client.post(f"/v1/rewards/{one_left}/redemptions", headers=as_(settings, new_org(), "a"))
    assert missing.status_code == 404


async def test_one_idempotency_key_makes_a_single_redemption(
    client: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    org = new_org()
    me = as_(settings, org, "a")
    await give_points(client, settings, org, "a", 1)
    reward = await add_reward(client, settings, org, cost=30)
    key = {"Idempotency-Key": "redeem-once-1"}
    first = body(await client.post(f"/v1/rewards/{reward}/redemptions", headers={**me, **key}))
    second = body(await client.post(f"/v1/rewards/{reward}/redemptions", headers={**me, **key}))
    assert first["redemption_id"] == second["redemption_id"]
    assert await balance(client, me) == 20
    mine = body(await client.get("/v1/me/redemptions", headers=me))["items"]
    assert [r["redemption_id"] for r in mine] == [first["redemption_id"]]


async def test_a_refused_redemption_retried_with_its_key_is_tried_again(
    client: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    # A refused redemption is kept (dropped) while a stale try of it may run; its key's retry
    # still gets a new try, as a refusal leaves the key unused.
    org = new_org()
    me = as_(settings, org, "a")
    await give_points(client, settings, org, "a", 1)  # 50 points
    reward = await add_reward(client, settings, org, cost=60, stock=2)
    keyed = {**me, "Idempotency-Key": "redeem-when-i-can"}
    refused = await client.post(f"/v1/rewards/{reward}/redemptions", headers=keyed)
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("/insufficient-points")
    thanks = {"to": "a", "message": "thanks again"}
    body(await client.post("/v1/kudos", headers=as_(settings, org, "peer-a"), json=thanks))
    assert await balance(client, me) == 100

    redeemed = body(await client.post(f"/v1/rewards/{reward}/redemptions", headers=keyed))
    assert redeemed["status"] == "requested"
    assert await balance(client, me) == 40
    assert body(await client.get(f"/v1/rewards/{reward}", headers=me))["stock"] == 1
    mine = body(await client.get("/v1/me/redemptions", headers=me))["items"]
    assert [r["redemption_id"] for r in mine] == [redeemed["redemption_id"]]


async def test_the_balance_never_goes_negative_under_concurrent_redemptions(
    client: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    import asyncio

    org = new_org()
    me = as_(settings, org, "a")
    await give_points(client, settings, org, "a", 1)  # 50 points
    reward = await add_reward(client, settings, org, cost=20)
    results = await asyncio.gather(
        *(client.post(f"/v1/rewards/{reward}/redemptions", headers=me) for _ in range(6))
    )
    assert sorted(r.status_code for r in results) == [201, 201, 409, 409, 409, 409]
    assert await balance(client, me) == 10


async def test_rejection_refunds_points_and_stock(
    client: httpx.AsyncClient, producer: EventProducer, settings: ChorusSettings
) -> None:
    org = new_org()
    me, admin = as_(settings, org, "a"), as_(settings, org, "boss", "admin")
    await give_points(client, settings, org, "a", 1)
    reward = await add_reward(client, settings, org, cost=40, stock=1)
    async with tap(settings, "chorus.recognition") as recognition:
        redemption = body(await client.post(f"/v1/rewards/{reward}/redemptions", headers=me))
        assert await balance(client, me) == 10
        rejected = body(
            await client.post(
                f"/v1/redemptions/{redemption['redemption_id']}/reject",
                headers=admin,
                json={"note": "out of mugs"},
            )
        )
        assert rejected["status"] == "rejected"
        events = await recognition.collect(
            lambda e: e.tenant == org and e.type == RewardRedeemed.event_type, count=2, settle_s=0.5
        )
    unique = list({e.id: e for e in events}.values())  # at least once: a relay may send one again
    assert [e.data.status for e in unique] == ["requested", "rejected"]  # type: ignore[attr-defined]
    assert await balance(client, me) == 50
    assert body(await client.get(f"/v1/rewards/{reward}", headers=me))["stock"] == 1
    again = await client.post(f"/v1/redemptions/{redemption['redemption_id']}/reject", headers=admin)
    assert again.status_code == 409
    assert await balance(client, me) == 50
    not_admin = await client.post(f"/v1/redemptions/{redemption['redemption_id']}/approve", headers=me)
    assert not_admin.status_code == 403


@dataclass(frozen=True)
class Stores:
    """Recognition's stores over the running app's database, to leave what a request that died
    half way leaves."""

    rewards: RewardStore
    points: PointsStore
    engagement: EngagementStore


@pytest.fixture(scope="module")
async def stores(recognition_settings: RecognitionSettings) -> AsyncIterator[Stores]:
    mongo = create_client(recognition_settings)
    db = mongo[recognition_settings.database_name("recognition")]
    yield Stores(RewardStore(db, SecretBox([DEV_WEBHOOK_SECRET_KEY])), PointsStore(db), EngagementStore(db))
    await mongo.close()


async def redeemer_and_reward(
    client: httpx.AsyncClient, settings: ChorusSettings, kudos: int, **reward: Any
) -> tuple[str, str]:
    """A new organisation, whose advocate "a" has `kudos` times 50 points, and a reward of it."""
    org = new_org()
    await give_points(client, settings, org, "a", kudos)
    return org, await add_reward(client, settings, org, **reward)


async def left_half_way(
    stores: Stores,
    org: str,
    advocate_id: str,
    reward_id: str,
    *,
    key: str | None,
    ago: timedelta,
    spent: bool,
) -> str:
    """What a redemption request leaves when it dies (its process stopped, or MongoDB past its
    deadline) after taking the stock and, if `spent`, the points, but before the ledger entry and
    showing the redemption. Its id, as the request made it."""
    rewards, points = stores.rewards, stores.points
    reward = await rewards.reward(org, reward_id)
    assert reward is not None
    made_at = partial(rewards.redemption_made_at, org)
    redemption_id = await id_for_request(
        "rdm_", key, (org, advocate_id, reward_id), made_at, datetime.now(UTC)
    )
    at = datetime.now(UTC) - ago
    await rewards.begin_redemption(rewards_domain.placing(redemption_id, org, advocate_id, reward, at))
    assert await rewards.reserve(org, reward, redemption_id)
    if spent:
        entry = points_domain.spending(org, advocate_id, redemption_id, reward.cost, reward.name, at)
        assert await points.spend(org, advocate_id, entry.id, reward.cost)
    return redemption_id


async def test_a_redemption_its_request_left_half_way_is_finished_once_by_the_relay(
    client: httpx.AsyncClient, settings: ChorusSettings, stores: Stores
) -> None:
    org, reward = await redeemer_and_reward(client, settings, 2, cost=30, stock=2)  # 100 points
    me, admin = as_(settings, org, "a"), as_(settings, org, "boss", "admin")
    async with tap(settings, "chorus.recognition") as recognition:
        # A request that died long enough ago that it can no longer write.
        died = await left_half_way(stores, org, "a", reward, key=None, ago=timedelta(minutes=1), spent=True)

        async def shown() -> list[dict[str, Any]]:
            return list(body(await client.get("/v1/me/redemptions", headers=me))["items"])

        [redemption] = await eventually(shown, timeout_s=20)
        events = await recognition.collect(
            lambda e: e.tenant == org and e.type == RewardRedeemed.event_type, count=1, settle_s=1.0
        )
    assert (redemption["redemption_id"], redemption["status"]) == (died, "requested")
    assert [(e.data.redemption_id, e.data.status) for e in events] == [(died, "requested")]  # type: ignore[attr-defined]
    # The points and the unit of stock were taken once, and the ledger says where they went.
    assert await balance(client, me) == 70
    ledger = body(await client.get("/v1/me/ledger", headers=me))["items"]
    assert [e["points"] for e in ledger if e["kind"] == "redemption"] == [-30]
    assert body(await client.get(f"/v1/rewards/{reward}", headers=me))["stock"] == 1
    approved = await client.post(f"/v1/redemptions/{died}/approve", headers=admin)
    assert approved.status_code == 200, approved.text


async def test_a_redemption_left_half_way_is_shown_to_no_one_and_its_retry_finishes_it(
    client: httpx.AsyncClient, settings: ChorusSettings, stores: Stores
) -> None:
    org, reward = await redeemer_and_reward(client, settings, 2, cost=30, stock=2)  # 100 points
    me, admin = as_(settings, org, "a"), as_(settings, org, "boss", "admin")
    key = "redeem-after-a-503"
    # A request that has just died (the relay leaves it to its request a while yet).
    placing = await left_half_way(stores, org, "a", reward, key=key, ago=timedelta(0), spent=True)
    assert body(await client.get("/v1/me/redemptions", headers=me))["items"] == []
    assert body(await client.get("/v1/redemptions", headers=admin))["items"] == []
    hidden = await client.post(f"/v1/redemptions/{placing}/approve", headers=admin)
    assert hidden.status_code == 404

    retried = body(
        await client.post(f"/v1/rewards/{reward}/redemptions", headers={**me, "Idempotency-Key": key})
    )
    assert (retried["redemption_id"], retried["status"]) == (placing, "requested")
    assert [
        r["redemption_id"] for r in body(await client.get("/v1/me/redemptions", headers=me))["items"]
    ] == [placing]
    assert await balance(client, me) == 70
    assert body(await client.get(f"/v1/rewards/{reward}", headers=me))["stock"] == 1


async def test_an_idempotency_key_reused_after_its_day_makes_a_new_redemption(
    client: httpx.AsyncClient, settings: ChorusSettings, stores: Stores
) -> None:
    org, reward = await redeemer_and_reward(client, settings, 2, cost=30, stock=3)  # 100 points
    me = {**as_(settings, org, "a"), "Idempotency-Key": "redeem-1"}
    first = body(await client.post(f"/v1/rewards/{reward}/redemptions", headers=me))
    # A day on, the key's record has expired, and a client numbering its keys from 1 again.
    a_day_ago = datetime.now(UTC) - timedelta(hours=25)
    db = stores.rewards.db
    await db[REDEMPTIONS].update_one({"_id": first["redemption_id"]}, {"$set": {"created_at": a_day_ago}})
    await db[idempotency.COLLECTION].delete_many({"org": org})
    second = body(await client.post(f"/v1/rewards/{reward}/redemptions", headers=me))
    assert second["redemption_id"] != first["redemption_id"]
    assert await balance(client, me) == 40
    mine = body(await client.get("/v1/me/redemptions", headers=me))["items"]
    assert {r["redemption_id"] for r in mine} == {first["redemption_id"], second["redemption_id"]}


async def test_a_redemption_left_half_way_without_the_points_gives_its_stock_back(
    client: httpx.AsyncClient, settings: ChorusSettings, stores: Stores
) -> None:
    org, reward = await redeemer_and_reward(client, settings, 1, cost=80, stock=3)  # 50 points
    me = as_(settings, org, "a")
    await left_half_way(stores, org, "a", reward, key=None, ago=timedelta(minutes=1), spent=False)

    async def stock() -> int:
        return int(body(await client.get(f"/v1/rewards/{reward}", headers=me))["stock"])

    async def given_back() -> bool:
        return await stock() == 3

    assert await stock() == 2
    await eventually(given_back, timeout_s=20)
    assert body(await client.get("/v1/me/redemptions", headers=me))["items"] == []
    assert await balance(client, me) == 50


async def test_a_rejection_its_request_left_half_way_gives_back_once_by_the_relay(
    client: httpx.AsyncClient, settings: ChorusSettings, stores: Stores
) -> None:
    org, reward = await redeemer_and_reward(client, settings, 1, cost=40, stock=1)  # 50 points
    me = as_(settings, org, "a")
    redemption = body(await client.post(f"/v1/rewards/{reward}/redemptions", headers=me))
    assert await balance(client, me) == 10
    # The rejection's own write (status and what it leaves to do), from a request that stopped
    # right after it; then the same again, as if it stopped after the refund and the return.
    left = {"status": "rejected", "refund_pending": True, "needs_relay": True}
    for _ in range(2):
        long_ago = datetime.now(UTC) - timedelta(minutes=1)
        await stores.rewards.db[REDEMPTIONS].update_one(
            {"_id": redemption["redemption_id"]}, {"$set": {**left, "updated_at": long_ago}}
        )

        async def given_back() -> bool:
            found = await stores.rewards.redemption(org, redemption["redemption_id"])
            return found is not None and not found.needs_relay

        await eventually(given_back, timeout_s=20)
        assert await balance(client, me) == 50
        assert body(await client.get(f"/v1/rewards/{reward}", headers=me))["stock"] == 1


class Receiver(BaseHTTPRequestHandler):
    calls: list[tuple[dict[str, str], bytes]] = []
    fail_first = 1

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        Receiver.calls.append((dict(self.headers), self.rfile.read(length)))
        status = 500 if len(Receiver.calls) <= Receiver.fail_first else 200
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/fulfil"
    server.shutdown()


async def test_approval_sends_a_signed_webhook_retried_until_delivered(
    client: httpx.AsyncClient, settings: ChorusSettings, receiver: str
) -> None:
    org = new_org()
    me, admin = as_(settings, org, "a"), as_(settings, org, "boss", "admin")
    body(await client.put("/v1/webhooks/fulfilment", headers=admin, json={"url": receiver, "secret": SECRET}))
    await give_points(client, settings, org, "a", 1)
    reward = await add_reward(client, settings, org, cost=10)
    redemption = body(await client.post(f"/v1/rewards/{reward}/redemptions", headers=me))
    body(await client.post(f"/v1/redemptions/{redemption['redemption_id']}/approve", headers=admin))

    async def delivered() -> bool:
        items = body(await client.get("/v1/webhooks/fulfilment/deliveries", headers=admin))["items"]
        return bool(items) and items[0]["state"] == "delivered"

    await eventually(delivered, timeout_s=20)
    assert len(Receiver.calls) == 2  # one 500, then the retry
    headers, raw = Receiver.calls[-1]
    assert verify_signature(
        SECRET, int(headers[TIMESTAMP_HEADER]), raw, headers[SIGNATURE_HEADER], now=int(time.time())
    )
    payload = json.loads(raw)
    assert (payload["redemption_id"], payload["points"]) == (redemption["redemption_id"], 10)
    fulfilled = body(
        await client.post(f"/v1/redemptions/{redemption['redemption_id']}/fulfil", headers=admin)
    )
    assert fulfilled["status"] == "fulfilled"


async def test_fulfilment_deliveries_are_logged_and_can_be_replayed_by_their_admin(
    client: httpx.AsyncClient, settings: ChorusSettings, receiver: str
) -> None:
    org = new_org()
    me, admin = as_(settings, org, "a"), as_(settings, org, "boss", "admin")
    body(await client.put("/v1/webhooks/fulfilment", headers=admin, json={"url": receiver, "secret": SECRET}))
    await give_points(client, settings, org, "a", 1)
    reward = await add_reward(client, settings, org, cost=10)
    redemption = body(await client.post(f"/v1/rewards/{reward}/redemptions", headers=me))
    body(await client.post(f"/v1/redemptions/{redemption['redemption_id']}/approve", headers=admin))

    async def deliveries() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = body(
            await client.get("/v1/webhooks/fulfilment/deliveries", headers=admin)
        )["items"]
        return items

    async def all_delivered(count: int) -> bool:
        items = await deliveries()
        return len(items) == count and all(d["state"] == "delivered" for d in items)

    await eventually(lambda: all_delivered(1), timeout_s=20)
    [original] = await deliveries()
    # The log holds every attempt: the 500, then the success.
    assert [a["status"] for a in original["log"]] == [500, 200]
    assert all(a["duration_ms"] >= 0 and a["error"] is None for a in original["log"])

    # Another organisation's admin and a non-admin cannot replay it.
    stranger = as_(settings, new_org(), "boss", "admin")
    assert original["delivery_id"] == original["id"]  # the name it had before the logs were one shape
    replay_path = f"/v1/webhooks/fulfilment/deliveries/{original['id']}/replay"
    assert (await client.post(replay_path, headers=stranger)).status_code == 404
    assert (await client.post(replay_path, headers=me)).status_code == 403
    assert body(await client.get("/v1/webhooks/fulfilment/deliveries", headers=stranger))["items"] == []

    replayed = await client.post(replay_path, headers=admin)
    assert replayed.status_code == 202, replayed.text
    assert replayed.json()["replay_of"] == original["id"]
    await eventually(lambda: all_delivered(2), timeout_s=20)
    # The same signed body again, under a delivery id of its own so that a deduping receiver takes it.
    first, again = Receiver.calls[-2], Receiver.calls[-1]
    assert again[1] == first[1]
    assert again[0][DELIVERY_HEADER] == replayed.json()["id"] != first[0][DELIVERY_HEADER]
    assert verify_signature(
        SECRET, int(again[0][TIMESTAMP_HEADER]), again[1], again[0][SIGNATURE_HEADER], now=int(time.time())
    )


async def test_a_fulfilment_replay_retried_with_its_idempotency_key_sends_the_body_once_more_only(
    client: httpx.AsyncClient, settings: ChorusSettings, stores: Stores, receiver: str
) -> None:
    org = new_org()
    me, admin = as_(settings, org, "a"), as_(settings, org, "boss", "admin")
    db = stores.rewards.db
    body(await client.put("/v1/webhooks/fulfilment", headers=admin, json={"url": receiver, "secret": SECRET}))
    await give_points(client, settings, org, "a", 1)
    reward = await add_reward(client, settings, org, cost=10)
    for _ in range(2):
        redemption = body(await client.post(f"/v1/rewards/{reward}/redemptions", headers=me))
        body(await client.post(f"/v1/redemptions/{redemption['redemption_id']}/approve", headers=admin))

    async def delivered(count: int) -> list[str] | None:
        items = body(await client.get("/v1/webhooks/fulfilment/deliveries", headers=admin))["items"]
        ids = [d["id"] for d in items if d["state"] == "delivered"]
        return ids if len(items) == len(ids) == count else None

    first_delivery, other_delivery = await eventually(lambda: delivered(2), timeout_s=20)
    replay = f"/v1/webhooks/fulfilment/deliveries/{first_delivery}/replay"
    keyed = {**admin, "Idempotency-Key": "redeliver-1"}
    first = await client.post(replay, headers=keyed)
    assert first.status_code == 202, first.text
    assert "idempotent-replayed" not in first.headers
    assert first.json()["replay_of"] == first_delivery
    await eventually(lambda: delivered(3), timeout_s=20)

    # The answer was lost: the client sends the same request again, and is answered the delivery
    # already queued.
    again = await client.post(replay, headers=keyed)
    assert (again.status_code, again.json()) == (202, first.json())
    assert again.headers["idempotent-replayed"] == "true"

    # The first request queued the delivery, then its process stopped before its answer was
    # stored: its key is taken over, and the retry finds the delivery the key queued.
    await db[idempotency.COLLECTION].update_one(
        {"org": org},
        {"$set": {"state": "running", "abandoned_at": datetime.now(UTC)}, "$unset": {"response": ""}},
    )
    taken_over = await client.post(replay, headers=keyed)
    assert (taken_over.status_code, taken_over.json()["id"]) == (202, first.json()["id"])

    # The same key for another delivery is refused, naming the header.
    refused = await client.post(f"/v1/webhooks/fulfilment/deliveries/{other_delivery}/replay", headers=keyed)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "Idempotency-Key"

    # The two redemptions' deliveries and the one replay's: the receiver got the body twice.
    assert sorted(await delivered(3) or []) == sorted([first_delivery, other_delivery, first.json()["id"]])
    sent = [headers[DELIVERY_HEADER] for headers, _ in Receiver.calls]
    assert sorted(set(sent)) == sorted([first_delivery, other_delivery, first.json()["id"]])
    assert sent.count(first.json()["id"]) == 1


async def test_kudos_have_a_weekly_allowance_and_the_receiver_scores(
    client: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    org = new_org()
    giver = as_(settings, org, "g")
    await enrol_now(settings, org, "r")
    await kudos_once_enrolled(client, "", giver, "r", "great post")
    for _ in range(4):  # the default allowance
        body(await client.post("/v1/kudos", headers=giver, json={"to": "r", "message": "great post"}))
    sixth = await client.post("/v1/kudos", headers=giver, json={"to": "r", "message": "again"})
    assert sixth.status_code == 409
    to_self = await client.post("/v1/kudos", headers=giver, json={"to": "g", "message": "me"})
    assert to_self.status_code == 422
    assert await balance(client, as_(settings, org, "r")) == 25
    received = body(await client.get("/v1/me/kudos", headers=as_(settings, org, "r")))["items"]
    assert len(received) == 5
    assert received[0]["message"] == "great post"


async def test_kudos_their_request_left_unscored_are_scored_once_by_the_relay_or_the_retry(
    client: httpx.AsyncClient, settings: ChorusSettings, stores: Stores
) -> None:
    org = new_org()
    giver, receiver = as_(settings, org, "g"), as_(settings, org, "r")
    await enrol_now(settings, org, "r")
    await kudos_once_enrolled(client, "", giver, "r", "first")  # 5 points
    assert await balance(client, receiver) == 5

    async def left_unscored(key: str | None) -> str:
        """What a request leaves that died after writing the kudos, before the receiver's points."""
        at = datetime.now(UTC)
        made_at = partial(stores.engagement.kudos_made_at, org)
        kudos = Kudos(
            await id_for_request("kds_", key, (org, "g"), made_at, at), "g", "r", "thanks", week_key(at), at
        )
        assert await stores.engagement.take_kudos_allowance(org, "g", kudos.week, 5, kudos.id)
        return (await stores.engagement.insert_kudos(org, kudos)).id

    async def scored(points: int) -> bool:
        return await balance(client, receiver) == points

    await left_unscored(None)
    await eventually(lambda: scored(10), timeout_s=20)

    key = "thanks-after-a-503"
    died = await left_unscored(key)
    retried = body(
        await client.post(
            "/v1/kudos", headers={**giver, "Idempotency-Key": key}, json={"to": "r", "message": "thanks"}
        )
    )
    assert (retried["kudos_id"], retried["allowance_left"]) == (died, 2)  # three of five given
    await eventually(lambda: scored(15), timeout_s=20)
    ledger = body(await client.get("/v1/me/ledger", headers=receiver))["items"]
    assert sorted(e["points"] for e in ledger) == [5, 5, 5]  # each kudos scored once
    assert len(body(await client.get("/v1/me/kudos", headers=receiver))["items"]) == 3


GOAL = {"kind": "audience", "target": 10}


async def my_goal_ids(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    return [goal["goal_id"] for goal in body(await client.get("/v1/me/goals", headers=headers))["items"]]


async def test_an_idempotency_key_replays_a_personal_goals_first_create(
    client: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    me = as_(settings, new_org(), "a")
    keyed = {**me, "Idempotency-Key": "goal-1"}
    first = await client.post("/v1/me/goals", headers=keyed, json=GOAL)
    again = await client.post("/v1/me/goals", headers=keyed, json=GOAL)
    assert first.status_code == again.status_code == 201, first.text
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert await my_goal_ids(client, me) == [first.json()["goal_id"]]
    other = await client.post("/v1/me/goals", headers=keyed, json={**GOAL, "target": 20})
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == "Idempotency-Key"


async def test_a_personal_goals_retry_whose_first_answer_was_lost_finds_the_goal_its_first_try_made(
    client: httpx.AsyncClient, settings: ChorusSettings, stores: Stores
) -> None:
    org = new_org()
    me = as_(settings, org, "a")
    keyed = {**me, "Idempotency-Key": "goal-1"}
    db = stores.engagement.tenants.db
    first = body(await client.post("/v1/me/goals", headers=keyed, json=GOAL))
    # The answer lost (MongoDB failed over after the goal was written): the retry runs again.
    await db[idempotency.COLLECTION].delete_many({"org": org})
    again = await client.post("/v1/me/goals", headers=keyed, json=GOAL)
    assert again.status_code == 201, again.text
    assert again.json() == first
    assert await my_goal_ids(client, me) == [first["goal_id"]]

    # A day on, the key's record has expired, and the client uses the key again: a new goal.
    a_day_ago = datetime.now(UTC) - timedelta(hours=25)
    await db[GOALS].update_one({"_id": first["goal_id"]}, {"$set": {"created_at": a_day_ago}})
    await db[idempotency.COLLECTION].delete_many({"org": org})
    later = body(await client.post("/v1/me/goals", headers=keyed, json=GOAL))
    assert await my_goal_ids(client, me) == [first["goal_id"], later["goal_id"]]


async def test_an_erased_advocate_leaves_the_boards_and_loses_personal_data(
    client: httpx.AsyncClient,
    producer: EventProducer,
    settings: ChorusSettings,
    recognition_settings: RecognitionSettings,
) -> None:
    org = new_org()
    await give_points(client, settings, org, "gone", 2)
    await give_points(client, settings, org, "stays", 1)
    other = as_(settings, org, "stays")
    # A create whose stored answer names the advocate (kept for Idempotency-Key replays).
    thanked = await client.post(
        "/v1/kudos",
        headers={**other, "Idempotency-Key": "thanks-gone"},
        json={"to": "gone", "message": "thanks"},
    )
    assert thanked.status_code == 201, thanked.text
    board = body(await client.get("/v1/leaderboard", headers=other, params={"period": "all"}))
    assert [r["advocate_id"] for r in board["items"]] == ["gone", "stays"]
    erasure = await publisher(producer, org).send(AdvocateErased(advocate_id="gone", requested_by="dpo"))

    async def gone_from_board() -> bool:
        rows = body(await client.get("/v1/leaderboard", headers=other, params={"period": "all"}))["items"]
        return [r["advocate_id"] for r in rows] == ["stays"]

    await eventually(gone_from_board, timeout_s=90)
    erased = as_(settings, org, "gone")
    assert body(await client.get("/v1/me/points", headers=erased))["lifetime"] == 0
    assert body(await client.get("/v1/me/kudos", headers=erased))["items"] == []
    assert body(await client.get("/v1/me/ledger", headers=erased))["items"] == []
    mongo = create_client(recognition_settings)
    try:
        db = mongo[recognition_settings.database_name("recognition")]
        assert [
            d["_id"]
            async for d in db["idempotency_keys"].find({"org": org})
            if '"gone"' in json.dumps(d, default=str)
        ] == []
        # The fact of the erasure is kept only until no event can name them (shared/vault.py): a
        # TTL index expires it an hour after the vault shreds them.
        [marker] = await db["erased_advocates"].find({"org": org}).to_list()
        shredded_at = erasure.time + timedelta(seconds=recognition_settings.erasure_grace_s)
        forgotten_at = marker["forget_at"].replace(tzinfo=UTC)  # stored to the millisecond
        assert abs(forgotten_at - (shredded_at + timedelta(hours=1))) < timedelta(milliseconds=1)
        indexes = await (await db["erased_advocates"].list_indexes()).to_list()
        assert [i["expireAfterSeconds"] for i in indexes if i["key"] == {"forget_at": 1}] == [0]
    finally:
        await mongo.close()


async def test_an_event_naming_someone_the_vault_no_longer_has_scores_for_nobody(
    client: httpx.AsyncClient, producer: EventProducer, settings: ChorusSettings
) -> None:
    # A consumer lagging past the erasure grace reads an erased person's late events with a
    # pseudonym linked to nobody (docs/erasure.md); recognition takes it for the erased person.
    org = new_org()
    await enrol_now(settings, org, "stays")
    late = Event.create(share_made("s1", "gone"), tenant=org, source="/tests")
    [sealed] = await producer.vault.seal([late])
    pseudonym = sealed.data.advocate_id
    assert is_pseudonym(pseudonym), pseudonym
    await producer.vault.shred_after(org, "gone", datetime.now(UTC))
    await producer.send_raw(SHARES.name, sealed.to_json_bytes(), b"s1", event_headers(sealed))
    await publisher(producer, org).share("s1", "stays")  # the same key: read after the late one
    stays = as_(settings, org, "stays")

    async def stays_scored() -> bool:
        return await balance(client, stays) > 0

    await eventually(stays_scored, timeout_s=60)
    board = body(await client.get("/v1/leaderboard", headers=stays, params={"period": "all"}))
    assert [r["advocate_id"] for r in board["items"]] == ["stays"]
    assert body(await client.get("/v1/me/ledger", headers=as_(settings, org, pseudonym)))["items"] == []


async def test_erasing_a_staff_member_leaves_what_they_did_naming_nobody(
    client: httpx.AsyncClient,
    producer: EventProducer,
    settings: ChorusSettings,
    recognition_settings: RecognitionSettings,
) -> None:
    """A staff member is also an advocate (one `sub`): the rules they published, the reversal
    they asked for and the redemptions they approved or rejected stay, naming nobody, the rules
    no longer exclude them by name, and their own content is nobody's; in their organisation
    only."""
    mongo = create_client(recognition_settings)
    db = mongo[recognition_settings.database_name("recognition")]
    made: dict[str, dict[str, tuple[str, str]]] = {}  # org -> what -> (collection, id)
    for org in (new_org(), new_org()):
        sam = as_(settings, org, "sam", "admin", "advocate")
        rules = body(await client.get("/v1/rules", headers=sam))["rules"]
        rules = {
            **rules,
            "kudos_weekly_allowance": 50,
            "points": {**rules["points"], "kudos_received": 50},
            "excluded_advocate_ids": ["sam", "zed"],
        }
        body(await client.put("/v1/rules", headers=sam, json={"rules": rules}))
        await give_points(client, settings, org, "ann", 3)
        ann = as_(settings, org, "ann")
        [entry, *_] = body(await client.get("/v1/me/ledger", headers=ann))["items"]
        reversal = body(
            await client.post(f"/v1/ledger/{entry['entry_id']}/reversal", headers=sam, json={"reason": "no"})
        )
        reward = await add_reward(client, settings, org, cost=10)
        approved, rejected = [
            body(await client.post(f"/v1/rewards/{reward}/redemptions", headers=ann))["redemption_id"]
            for _ in range(2)
        ]
        body(await client.post(f"/v1/redemptions/{approved}/approve", headers=sam))
        body(await client.post(f"/v1/redemptions/{rejected}/reject", headers=sam))
        await publisher(producer, org).send(
            ContentPublished(
                content_id="c1",
                content_type="article",
                title="Mine",
                url="https://example.com/mine",
                author_advocate_id="sam",
                published_by="editor",
            )
        )
        made[org] = {
            "created_by": (RULES, joined_id(org, "1")),
            "requested_by": (LEDGER, reversal["entry_id"]),
            "approved_by": (REDEMPTIONS, approved),
            "rejected_by": (REDEMPTIONS, rejected),
            "author": (CONTENT_AUTHORS, joined_id(org, "c1")),
        }

    async def stored(org: str) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        for field, (collection, doc_id) in made[org].items():
            doc = await db[collection].find_one({"_id": doc_id, "org": org})
            found[field] = None if doc is None else doc.get(field)
        return found

    erased_org, other_org = made
    try:
        # Their content's authorship is known before the erasure (the two come on two topics).
        async def authors_known() -> bool:
            return [(await stored(org))["author"] for org in made] == ["sam", "sam"]

        await eventually(authors_known, timeout_s=90)
        await publisher(producer, erased_org).send(AdvocateErased(advocate_id="sam", requested_by="dpo"))

        async def erased() -> bool:
            return await stored(erased_org) == dict.fromkeys(made[erased_org], "erased") | {"author": None}

        await eventually(erased, timeout_s=90)
        assert await stored(other_org) == dict.fromkeys(made[other_org], "sam")

        async def excluded(org: str) -> list[str]:
            [version] = await db[RULES].find({"org": org}).to_list()
            return list(json.loads(version["rules_json"])["excluded_advocate_ids"])

        async def no_longer_excluded() -> bool:
            return await excluded(erased_org) == ["zed"]

        await eventually(no_longer_excluded, timeout_s=30)
        assert await excluded(other_org) == ["sam", "zed"]
    finally:
        await mongo.close()
