"""Events in, ledger, balances, badges and boards out: on the real broker and database."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from services.recognition.handlers import GROUP
from services.recognition.leaderboards.schemas import LeaderboardOut
from services.recognition.main import create_app
from services.recognition.points import domain as points_domain
from services.recognition.points.store import PointsStore
from services.recognition.settings import RecognitionSettings
from shared.events import TOPICS
from shared.events.advocates import AdvocateErased, AdvocateUpdated
from shared.events.conversions import ApplicationSubmitted, HireMade, SaleRecorded, SaleRefunded
from shared.events.recognition import RewardGranted
from shared.events.training import CourseCompleted
from shared.messaging import EventProducer, skip_history
from shared.mongo import create_client
from shared.settings import ChorusSettings
from tests.helpers import bearer, eventually, new_org, openapi_errors, running_app, tap
from tests.integration.recognition.conftest import Publisher, body, publisher
from tests.unit.recognition.ob3 import credential_errors

pytestmark = pytest.mark.integration


def as_(settings: ChorusSettings, org: str, sub: str, *roles: str) -> dict[str, str]:
    return bearer(settings, org=org, sub=sub, roles=list(roles) or ["advocate"])


async def ledger_of(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = body(
        await client.get("/v1/me/ledger", headers=headers, params={"limit": 200})
    )["items"]
    return items


async def points_of(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = body(await client.get("/v1/me/points", headers=headers))
    return result


async def profiles_known(client: httpx.AsyncClient, settings: ChorusSettings, org: str) -> None:
    """Wait until the enrolments are projected (they travel on another topic than the scores)."""
    for advocate in "abc":
        headers = as_(settings, org, advocate)
        body(await client.post("/v1/me/goals", headers=headers, json={"kind": "audience", "target": 10}))

    async def all_achieved() -> bool:
        for advocate in "abc":
            goals = body(await client.get("/v1/me/goals", headers=as_(settings, org, advocate)))["items"]
            if not goals[0]["achieved"]:
                return False
        return True

    await eventually(all_achieved, timeout_s=90)


async def run_scenario(pub: Publisher, client: httpx.AsyncClient, settings: ChorusSettings) -> None:
    """a shares and converts, b shares, c (opted out of ranking) trains; bot and self clicks, and
    clicks on b's link after b withdrew tracking consent, score 0."""
    await pub.enrol("a", "red", audience=1500)
    await pub.enrol("b", "red", audience=10)
    await pub.enrol("c", "blue", public=False, audience=10)
    await profiles_known(client, settings, pub.org)
    await pub.share("s1", "a", team="red")
    await pub.click("s1", "a", bot=True, team="red")
    await pub.click("s1", "a", self_click=True, team="red")
    await pub.click("s1", "a", click_id="k1", team="red")  # verifies s1 and is unique
    await pub.click("s1", "a", click_id="k2", team="red")  # unique
    await pub.click("s1", "a", click_id="k3", unique=False, team="red")  # repeat visitor: nothing
    await pub.lead("lead-1", "a", "s1")
    await pub.share("s2", "b", team="red")
    await pub.click("s2", "b", click_id="k4", team="red", tracked=False)  # would verify s2 and be unique
    await pub.send(CourseCompleted(advocate_id="c", course_id="basics", title="Basics"))


EXPECTED_LEDGER = {
    "a": sorted(
        [("share_made", 10), ("verified_share", 5), ("unique_click", 1), ("unique_click", 1), ("lead", 50)]
    ),
    "b": [("share_made", 10)],
    "c": [("course_completed", 30)],
}


EXPECTED_BADGES = {"a": {"first-share", "first-lead"}, "b": {"first-share"}, "c": {"trained"}}


async def assert_scenario_state(client: httpx.AsyncClient, settings: ChorusSettings, org: str) -> None:
    for advocate, expected in EXPECTED_LEDGER.items():
        headers = as_(settings, org, advocate)
        entries = await ledger_of(client, headers)
        assert sorted((e["kind"], e["points"]) for e in entries) == expected
        points = await points_of(client, headers)
        total = sum(p for _, p in expected)
        assert (points["balance"], points["lifetime"]) == (total, total)
    badges = {
        adv: {
            b["badge_id"]
            for b in body(await client.get("/v1/me/badges", headers=as_(settings, org, adv)))["items"]
        }
        for adv in "abc"
    }
    assert badges == EXPECTED_BADGES

    # Boards are projected after the accounts: they catch up a moment later.
    b = as_(settings, org, "b")
    for period in ("week", "month", "quarter", "all"):
        await eventually(lambda p=period: _board_is(client, b, p, [("a", 67), ("b", 10)]), timeout_s=30)
    board = body(await client.get("/v1/leaderboard", headers=b, params={"period": "week"}))
    assert [(r["advocate_id"], r["points"], r["rank"]) for r in board["items"]] == [
        ("a", 67, 1),
        ("b", 10, 2),
    ]
    assert board["me"]["rank"] == 2
    # The boards are sent as built (leaderboards/api.py _board_response): they must still be what
    # the released OpenAPI document promises, every required field there.
    assert openapi_errors("recognition", "LeaderboardOut", board) == []
    assert LeaderboardOut.model_validate(board).me is not None
    around = body(
        await client.get(
            "/v1/leaderboard/around-me", headers=as_(settings, org, "b"), params={"period": "week", "size": 1}
        )
    )
    assert [(r["advocate_id"], r["rank"], r["is_me"]) for r in around["items"]] == [
        ("a", 1, False),
        ("b", 2, True),
    ]
    assert openapi_errors("recognition", "LeaderboardOut", around) == []
    assert LeaderboardOut.model_validate(around).as_of is not None
    # c opted out: hidden from others, but sees their own standing.
    c_board = body(
        await client.get("/v1/leaderboard", headers=as_(settings, org, "c"), params={"period": "all"})
    )
    assert "c" not in [r["advocate_id"] for r in c_board["items"]]
    assert (c_board["me"]["points"], c_board["me"]["rank"]) == (30, 2)
    teams = body(
        await client.get(
            "/v1/leaderboard", headers=as_(settings, org, "a"), params={"period": "month", "scope": "team"}
        )
    )
    assert [
        (t["team"], t["points"], t["active_advocates"], t["points_per_advocate"]) for t in teams["items"]
    ] == [("red", 77, 2, 38.5), ("blue", 30, 1, 30.0)]
    assert openapi_errors("recognition", "LeaderboardOut", teams) == []
    assert [(t["display_name"], t["avatar_url"]) for t in teams["items"]] == [(None, None), (None, None)]
    assert LeaderboardOut.model_validate(teams).as_of is not None  # team standings, as of a moment
    red = body(
        await client.get(
            "/v1/leaderboard",
            headers=as_(settings, org, "a"),
            params={"period": "quarter", "scope": "team", "team": "red"},
        )
    )
    assert [r["advocate_id"] for r in red["items"]] == ["a", "b"]
    assert openapi_errors("recognition", "LeaderboardOut", red) == []
    assert LeaderboardOut.model_validate(red).team == "red"


async def scenario_done(client: httpx.AsyncClient, settings: ChorusSettings, org: str) -> bool:
    for advocate, expected in EXPECTED_LEDGER.items():
        if len(await ledger_of(client, as_(settings, org, advocate))) != len(expected):
            return False
    # Badges are checked after an entry is projected: they come a moment after the ledger.
    for advocate, badges in EXPECTED_BADGES.items():
        if set((await points_of(client, as_(settings, org, advocate)))["badges"]) != badges:
            return False
    return True


async def test_a_scenario_of_events_gives_the_expected_ledger_balances_badges_and_boards(
    client: httpx.AsyncClient, producer: EventProducer, settings: ChorusSettings
) -> None:
    org = new_org()
    pub = publisher(producer, org)
    async with tap(settings, "chorus.recognition") as recognition:
        await run_scenario(pub, client, settings)
        await eventually(lambda: scenario_done(client, settings, org), timeout_s=90)
        await assert_scenario_state(client, settings, org)
        granted = await recognition.collect(
            lambda e: e.tenant == org and e.type == RewardGranted.event_type, count=7, settle_s=1.0
        )
    # Delivery is at least once: the relay may publish an entry again, always under the entry's id
    # and with the same data (only the envelope's send time may differ).
    by_id = {e.id: e for e in granted}
    assert all(by_id[e.id].data == e.data for e in granted), [
        (by_id[e.id].data, e.data) for e in granted if by_id[e.id].data != e.data
    ]
    assert sorted(int(e.data.points) for e in by_id.values()) == [1, 1, 5, 10, 10, 30, 50]  # type: ignore[attr-defined]


async def test_redelivered_events_and_a_restarted_consumer_change_nothing(
    recognition_settings: RecognitionSettings, producer: EventProducer, settings: ChorusSettings
) -> None:
    # Its own database and consumer group, so the module's running app does not share the work.
    prefix = f"{recognition_settings.consumer_group_prefix}-restart"
    await skip_history(settings.kafka_bootstrap, f"{prefix}.{GROUP}", [t.name for t in TOPICS])
    own = recognition_settings.model_copy(update={"consumer_group_prefix": prefix, "mongo_db_prefix": prefix})
    org, marker_org = new_org(), new_org()
    pub, markers = publisher(producer, org), publisher(producer, marker_org)
    async with running_app(create_app(settings=own)) as client:
        await run_scenario(pub, client, settings)
        await eventually(lambda: scenario_done(client, settings, org), timeout_s=90)
        await pub.resend_all()  # the same event ids again, while running
        # A marker in another organisation, published after the duplicates: once it is scored,
        # the duplicates have been consumed too (all of it on the same few partitions' timeline).
        await markers.share("marker-1", "zed")
        await eventually(lambda: ledger_of(client, as_(settings, marker_org, "zed")), timeout_s=90)
        await assert_scenario_state(client, settings, org)
    # A restarted service (same consumer group, committed offsets) sees every event a third time.
    async with running_app(create_app(settings=own)) as client:
        await pub.resend_all()
        await markers.share("marker-2", "zed")
        await eventually(lambda: _count_is(client, as_(settings, marker_org, "zed"), 2), timeout_s=90)
        await assert_scenario_state(client, settings, org)


async def _board_is(
    client: httpx.AsyncClient, headers: dict[str, str], period: str, expected: list[tuple[str, int]]
) -> bool:
    board = body(await client.get("/v1/leaderboard", headers=headers, params={"period": period}))
    return [(r["advocate_id"], r["points"]) for r in board["items"]] == expected


async def _count_is(client: httpx.AsyncClient, headers: dict[str, str], n: int) -> bool:
    return len(await ledger_of(client, headers)) == n


async def test_caps_and_exclusions_hold(
    client: httpx.AsyncClient, producer: EventProducer, settings: ChorusSettings
) -> None:
    org = new_org()
    admin = as_(settings, org, "boss", "admin")
    rules = body(await client.get("/v1/rules", headers=admin))
    assert rules["version"] == 0
    new_rules = {
        **rules["rules"],
        "daily_cap": 25,
        "per_share_cap": 12,
        "excluded_advocate_ids": ["comms"],
        "excluded_content_ids": ["internal-memo"],
    }
    published = body(
        await client.put("/v1/rules", headers=admin, json={"rules": new_rules, "expected_version": 0})
    )
    assert published["version"] == 1
    stale = await client.put("/v1/rules", headers=admin, json={"rules": new_rules, "expected_version": 0})
    assert stale.status_code == 409
    pub = publisher(producer, org)
    a = as_(settings, org, "a")
    # In phases: shares and clicks travel on different topics, and caps depend on order.
    await pub.share("s1", "a")  # 10
    await eventually(lambda: _count_is(client, a, 1), timeout_s=90)
    await pub.click("s1", "a", click_id="k1")  # verified 5 -> per-share cap leaves 2; unique 1 -> 0
    await eventually(lambda: _count_is(client, a, 3), timeout_s=90)
    await pub.share("s2", "a")  # these three share the 13 left today: 10, 3 and 0 in some order
    await pub.share("s3", "a")
    await pub.share("s4", "a")
    await pub.lead("lead-1", "a", "s1")  # leads are not capped: 50
    await pub.share("s5", "comms")  # excluded advocate
    await pub.share("s6", "b", content_id="internal-memo")  # excluded content
    await pub.share("s7", "b")  # counted: 10
    await eventually(lambda: _count_is(client, a, 7), timeout_s=90)
    await eventually(lambda: _count_is(client, as_(settings, org, "b"), 1), timeout_s=90)
    entries = await ledger_of(client, a)
    assert sorted((e["kind"], e["points"]) for e in entries) == sorted(
        [
            ("share_made", 10),
            ("verified_share", 2),
            ("unique_click", 0),
            ("share_made", 10),
            ("share_made", 3),
            ("share_made", 0),
            ("lead", 50),
        ]
    )
    assert (await points_of(client, a))["balance"] == 75
    assert await ledger_of(client, as_(settings, org, "comms")) == []
    # Boards are projected after the account: they catch up a moment later.
    await eventually(lambda: _board_is(client, a, "all", [("a", 75), ("b", 10)]), timeout_s=30)
    assert all(e["rules_version"] == 1 for e in entries)


async def test_a_correction_flows_through_to_balance_and_boards(
    client: httpx.AsyncClient, producer: EventProducer, settings: ChorusSettings
) -> None:
    org = new_org()
    pub = publisher(producer, org)
    await pub.share("s1", "a")
    await pub.lead("lead-1", "a", "s1")
    await pub.share("s2", "b")
    await pub.share("s3", "b")
    a, b = as_(settings, org, "a"), as_(settings, org, "b")
    await eventually(lambda: _count_is(client, a, 2), timeout_s=90)
    await eventually(lambda: _count_is(client, b, 2), timeout_s=90)
    admin = as_(settings, org, "boss", "admin")
    async with tap(settings, "chorus.recognition") as recognition:
        reversed_ = body(
            await client.post(
                "/v1/corrections/lead-invalidations",
                headers=admin,
                json={"conversion_id": "lead-1", "reason": "spam lead"},
            )
        )["items"]
        assert [(e["kind"], e["points"]) for e in reversed_] == [("reversal", -50)]
        again = body(
            await client.post(
                "/v1/corrections/lead-invalidations",
                headers=admin,
                json={"conversion_id": "lead-1", "reason": "spam lead"},
            )
        )["items"]
        assert again[0]["entry_id"] == reversed_[0]["entry_id"]
        reversal_id = reversed_[0]["entry_id"]
        events = await recognition.collect(
            lambda e: e.type == RewardGranted.event_type and e.data.entry_id == reversal_id,  # type: ignore[attr-defined]
            count=1,
            settle_s=0.5,
        )
    unique = {e.id: e for e in events}.values()  # at least once: a relay may send one again
    assert [e.data.points for e in unique] == [-50]  # type: ignore[attr-defined]
    assert (await points_of(client, a))["balance"] == 10
    assert (await points_of(client, a))["lifetime"] == 10
    assert sorted((e["kind"], e["points"]) for e in await ledger_of(client, a)) == [
        ("lead", 50),
        ("reversal", -50),
        ("share_made", 10),
    ]
    for period in ("week", "month", "quarter", "all"):
        board = body(await client.get("/v1/leaderboard", headers=a, params={"period": period}))
        assert [(r["advocate_id"], r["points"]) for r in board["items"]] == [("b", 20), ("a", 10)]
    not_scoring = await client.post(
        f"/v1/ledger/{reversed_[0]['entry_id']}/reversal", headers=admin, json={"reason": "undo the undo"}
    )
    assert not_scoring.status_code == 409, not_scoring.text  # the entry's kind forbids it
    assert not_scoring.json()["type"].endswith("/not-reversible")
    other_org = await client.post(
        f"/v1/ledger/{reversed_[0]['entry_id']}/reversal",
        headers=as_(settings, new_org(), "boss", "admin"),
        json={"reason": "x"},
    )
    assert other_org.status_code == 404


async def test_an_awarded_credential_validates_against_the_open_badges_3_schema(
    client: httpx.AsyncClient, producer: EventProducer, settings: ChorusSettings
) -> None:
    org = new_org()
    pub = publisher(producer, org)
    await pub.share("s1", "a")
    a = as_(settings, org, "a")
    awards = await eventually(lambda: _awards(client, a), timeout_s=90)
    credential = body(await client.get(f"/v1/badges/{awards[0]['award_id']}/credential", headers=a))
    assert credential_errors(credential) == []
    assert credential["credentialSubject"]["achievement"]["name"] == "First share"
    stranger = await client.get(
        f"/v1/badges/{awards[0]['award_id']}/credential", headers=as_(settings, org, "b")
    )
    assert stranger.status_code == 404
    other_org = await client.get(
        f"/v1/badges/{awards[0]['award_id']}/credential", headers=as_(settings, new_org(), "a", "admin")
    )
    assert other_org.status_code == 404
    # An id no award has, in characters a header cannot carry: a 404 problem, not a 500.
    unknown = await client.get("/v1/badges/%E7%AA%B1/credential", headers=as_(settings, org, "a", "admin"))
    assert (unknown.status_code, unknown.headers["content-type"]) == (404, "application/problem+json")


async def _awards(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = body(await client.get("/v1/me/badges", headers=headers))["items"]
    return items


def _conversion(conversion_id: str, advocate_id: str, share_id: str) -> dict[str, Any]:
    return {
        "conversion_id": conversion_id,
        "key": share_id,
        "customer_id": f"cust-{conversion_id}",
        "attributed": True,
        "share_id": share_id,
        "advocate_id": advocate_id,
        "content_id": "c1",
        "converted_at": datetime.now(UTC),
    }


def _refund(refund_id: str, sale_id: str, amount: str, *, full: bool) -> SaleRefunded:
    return SaleRefunded(
        **_conversion(refund_id, "a", "s1"),
        sale_id=sale_id,
        order_id=f"order-{sale_id}",
        amount=amount,
        currency="EUR",
        fully_refunded=full,
    )


async def test_talent_scores_and_a_sale_refunded_in_full_gives_its_points_back(
    client: httpx.AsyncClient, producer: EventProducer, settings: ChorusSettings
) -> None:
    org = new_org()
    pub = publisher(producer, org)
    money = {"amount": "100.00", "currency": "EUR"}
    await pub.send(ApplicationSubmitted(**_conversion("app-1", "a", "s1")))
    await pub.send(HireMade(**_conversion("hire-1", "a", "s1"), application_id="app-1"))
    await pub.send(SaleRecorded(**_conversion("kept", "a", "s1"), order_id="order-kept", **money))
    await pub.send(SaleRecorded(**_conversion("returned", "a", "s1"), order_id="order-returned", **money))
    # Part of one sale comes back; the other comes back in two parts, the second ending it.
    await pub.send(_refund("r1", "kept", "40.00", full=False))
    await pub.send(_refund("r2", "returned", "60.00", full=False))
    last = await pub.send(_refund("r3", "returned", "40.00", full=True))
    await pub.send(_refund("r4", "no-such-sale", "10.00", full=True))  # a sale never scored: nothing
    a = as_(settings, org, "a")
    await eventually(lambda: _count_is(client, a, 5), timeout_s=90)

    assert sorted((e["kind"], e["points"]) for e in await ledger_of(client, a)) == [
        ("application", 50),
        ("hire", 300),
        ("reversal", -100),
        ("sale", 100),
        ("sale", 100),
    ]
    assert (await points_of(client, a))["balance"] == 450
    # The refund sent again (at least once) takes nothing more.
    await producer.publish(last)
    await pub.send(_refund("r5", "returned", "0.01", full=True))  # a second "full" refund, a duplicate
    await pub.send(ApplicationSubmitted(**_conversion("app-2", "a", "s1")))  # a marker: all before it done
    await eventually(lambda: _count_is(client, a, 6), timeout_s=90)
    assert (await points_of(client, a))["balance"] == 500


async def test_a_leaver_drops_off_the_live_boards_and_keeps_their_points(
    client: httpx.AsyncClient, producer: EventProducer, settings: ChorusSettings
) -> None:
    """Issue 16: an advocate the organisation's directory deactivated (`active: false` on
    chorus.advocate.updated) leaves the boards others see and their team's active members; their
    points and their team's history stay."""
    org = new_org()
    pub = publisher(producer, org)
    await pub.enrol("stays", "red")
    await pub.enrol("leaves", "red")
    await pub.share("s1", "stays", team="red")
    await pub.share("s2", "leaves", team="red")
    viewer = as_(settings, org, "stays")
    await eventually(lambda: _board_is(client, viewer, "all", [("leaves", 10), ("stays", 10)]), timeout_s=90)
    await pub.send(AdvocateUpdated(advocate_id="leaves", team="red", active=False))
    await eventually(lambda: _board_is(client, viewer, "all", [("stays", 10)]), timeout_s=90)

    async def team_is(expected: list[tuple[str, int, int]]) -> bool:
        board = body(
            await client.get("/v1/leaderboard", headers=viewer, params={"period": "all", "scope": "team"})
        )
        return [(t["team"], t["points"], t["active_advocates"]) for t in board["items"]] == expected

    await eventually(lambda: team_is([("red", 20, 1)]), timeout_s=30)
    leaver = as_(settings, org, "leaves")
    assert (await points_of(client, leaver))["balance"] == 10
    # Rehired: back on the boards.
    await pub.send(AdvocateUpdated(advocate_id="leaves", team="red", active=True))
    await eventually(lambda: _board_is(client, viewer, "all", [("leaves", 10), ("stays", 10)]), timeout_s=90)


async def test_points_a_leaver_earns_after_leaving_keep_them_off_the_boards(
    client: httpx.AsyncClient, producer: EventProducer, settings: ChorusSettings
) -> None:
    """What a leaver earns after leaving (a click on an old share, in a new week) lands on a board
    they had no entry on yet: that entry is made hidden, as their others were."""
    org = new_org()
    pub = publisher(producer, org)
    await pub.enrol("stays", "red")
    # Deactivated without an enrolment first: kudos to an active one would score for them.
    await pub.send(AdvocateUpdated(advocate_id="leaves", team="red", active=False))
    stays = as_(settings, org, "stays")

    async def leaver_known() -> bool:  # kudos to a leaver are refused once recognition knows
        response = await client.post("/v1/kudos", headers=stays, json={"to": "leaves", "message": "thanks"})
        assert response.status_code in (201, 422), response.text
        return response.status_code == 422 and "left" in response.text

    await eventually(leaver_known, timeout_s=60)
    await pub.share("s1", "stays", team="red")
    await pub.share("s2", "leaves", team="red")
    leaves = as_(settings, org, "leaves")

    async def board_seen_by_leaver() -> dict[str, Any] | None:
        board: dict[str, Any] = body(
            await client.get("/v1/leaderboard", headers=leaves, params={"period": "all"})
        )
        counted = board["me"] is not None and board["me"]["points"] == 10
        return board if counted and len(board["items"]) else None

    board = await eventually(board_seen_by_leaver, timeout_s=90)
    assert [(r["advocate_id"], r["points"]) for r in board["items"]] == [("stays", 10)]


async def test_an_erasure_takes_from_each_team_what_its_advocate_counted_there(
    client: httpx.AsyncClient, producer: EventProducer, settings: ChorusSettings
) -> None:
    """An advocate who changed team counted for both: erased, each team board loses what they
    brought it, so the team boards stay the sum of their members."""
    org = new_org()
    pub = publisher(producer, org)
    viewer = as_(settings, org, "stays")

    async def teams_are(expected: dict[str, int]) -> bool:
        board = body(
            await client.get("/v1/leaderboard", headers=viewer, params={"period": "all", "scope": "team"})
        )
        return {t["team"]: t["points"] for t in board["items"]} == expected

    await pub.share("s1", "mover", team="red")
    await pub.share("s2", "stays", team="red")
    await eventually(lambda: teams_are({"red": 20}), timeout_s=90)
    await pub.share("s3", "mover", team="blue")  # moved to blue
    await eventually(lambda: teams_are({"red": 20, "blue": 10}), timeout_s=90)
    await pub.send(AdvocateErased(advocate_id="mover", requested_by="dpo"))
    await eventually(lambda: teams_are({"red": 10, "blue": 0}), timeout_s=60)


async def test_a_leavers_expiry_left_half_way_is_finished_once(
    client: httpx.AsyncClient,
    producer: EventProducer,
    settings: ChorusSettings,
    recognition_settings: RecognitionSettings,
) -> None:
    org = new_org()
    admin, a = as_(settings, org, "boss", "admin"), as_(settings, org, "a")
    rules = body(await client.get("/v1/rules", headers=admin))["rules"]
    body(await client.put("/v1/rules", headers=admin, json={"rules": {**rules, "leaver_points": "expire"}}))
    pub = publisher(producer, org)
    await pub.enrol("a", "red")
    await pub.share("s1", "a", team="red")
    await eventually(lambda: _count_is(client, a, 1), timeout_s=90)
    # The leaver's event was handled as far as its expiry entry, then the process stopped.
    left = uuid.uuid4().hex
    mongo = create_client(recognition_settings)
    try:
        store = PointsStore(mongo[recognition_settings.database_name("recognition")])
        await store.insert_entry(points_domain.expiry(org, "a", left, 10, datetime.now(UTC)), [])
    finally:
        await mongo.close()
    await pub.send(AdvocateUpdated(advocate_id="a", team="red", active=False), event_id=left)  # redelivered

    async def expired() -> bool:
        return (await points_of(client, a))["balance"] == 0

    await eventually(expired, timeout_s=90)
    await asyncio.sleep(1.0)  # the relay and the redelivery have both had their go
    assert sorted((e["kind"], e["points"]) for e in await ledger_of(client, a)) == [
        ("expiry", -10),
        ("share_made", 10),
    ]
    assert (await points_of(client, a))["written_off"] == 0


async def test_kudos_to_a_leaver_are_refused(
    client: httpx.AsyncClient, producer: EventProducer, settings: ChorusSettings
) -> None:
    org = new_org()
    pub = publisher(producer, org)
    await pub.send(AdvocateUpdated(advocate_id="gone", team="red", active=False))
    giver = as_(settings, org, "peer")

    async def refused() -> bool:
        response = await client.post("/v1/kudos", headers=giver, json={"to": "gone", "message": "thanks"})
        assert response.status_code in (201, 422), response.text
        return response.status_code == 422 and "left" in response.text

    await eventually(refused, timeout_s=60)  # once recognition knows they left


async def test_a_leavers_points_expire_where_the_rules_say_so_and_are_kept_otherwise(
    client: httpx.AsyncClient, producer: EventProducer, settings: ChorusSettings
) -> None:
    expiring, keeping = new_org(), new_org()
    admin = as_(settings, expiring, "boss", "admin")
    rules = body(await client.get("/v1/rules", headers=admin))["rules"]
    body(await client.put("/v1/rules", headers=admin, json={"rules": {**rules, "leaver_points": "expire"}}))
    for org in (expiring, keeping):
        pub = publisher(producer, org)
        await pub.enrol("a", "red")
        await pub.share("s1", "a", team="red")
        await pub.share("s2", "a", team="red")
        await eventually(lambda org=org: _count_is(client, as_(settings, org, "a"), 2), timeout_s=90)
        await pub.send(AdvocateUpdated(advocate_id="a", team="red", active=False))

    a = as_(settings, expiring, "a")
    await eventually(lambda: _count_is(client, a, 3), timeout_s=90)
    assert sorted((e["kind"], e["points"]) for e in await ledger_of(client, a)) == [
        ("expiry", -20),
        ("share_made", 10),
        ("share_made", 10),
    ]
    points = await points_of(client, a)
    assert (points["balance"], points["lifetime"]) == (0, 20)  # what they earned stays on record

    # Where leavers keep their points: once the leaver is off the live board, the update has been
    # handled, and their balance is whole (for a rehire).
    kept = as_(settings, keeping, "a")
    await eventually(lambda: _board_is(client, kept, "all", []), timeout_s=90)
    assert (await points_of(client, kept))["balance"] == 20
    assert [e["kind"] for e in await ledger_of(client, kept)] == ["share_made", "share_made"]
