"""With the Kafka broker frozen, every write of every service answers at once and stays ready;
when the broker is back, every event those writes made arrives, once per event id, in the order
it was written per key (shared/outbox.py)."""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devtools import local_stack
from services.content.main import OUTBOX_COLLECTIONS as CONTENT_OUTBOXES
from services.metrics.main import OUTBOX_COLLECTIONS as METRICS_OUTBOXES
from services.recognition.main import OUTBOX_COLLECTIONS as RECOGNITION_OUTBOXES
from services.sharing.main import OUTBOX_COLLECTIONS as SHARING_OUTBOXES
from shared.events import TOPICS, Event, EventData, decode
from shared.events.advocates import AdvocateEnrolled
from shared.messaging import EventProducer
from shared.mongo import Document, create_client
from shared.outbox import OUTBOX, OUTBOX_SINCE
from tests.helpers import TopicTap, eventually, new_org
from tests.integration.content.conftest import article
from tests.integration.outages.conftest import Chorus, frozen

pytestmark = pytest.mark.integration

# What the issue asks of a write while the broker is away: its normal answer, promptly.
ANSWER_WITHIN_S = 1.0
OUTBOXES = {
    "content": CONTENT_OUTBOXES,
    "sharing": SHARING_OUTBOXES,
    "metrics": METRICS_OUTBOXES,
    "recognition": RECOGNITION_OUTBOXES,
}
# Topics whose events of an organisation come only from the writes below (recognition's consumer
# also scores the events it reads once the broker is back, with events of its own).
ONLY_FROM_WRITES = {
    "chorus.content",
    "chorus.training",
    "chorus.advocates",
    "chorus.shares",
    "chorus.conversions",
}


SCIM_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
SCIM_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
SCIM_SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


def scim_patch(op: str, path: str, value: Any = None) -> dict[str, Any]:
    operation = {"op": op, "path": path} | ({} if value is None else {"value": value})
    return {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [operation]}


class Writes:
    """Sends requests to the services and checks each answers with a success, in time."""

    def __init__(self, chorus: Chorus) -> None:
        self.chorus = chorus
        self.sent: list[tuple[str, str, str]] = []  # (service, method, path)

    async def __call__(
        self, service: str, method: str, path: str, headers: dict[str, str], json: Any = None
    ) -> Any:
        started = time.monotonic()
        response = await self.chorus.clients[service].request(method, path, headers=headers, json=json)
        took = time.monotonic() - started
        what = f"{service} {method} {path}"
        self.sent.append((service, method, path))
        assert response.status_code < 400, f"{what}: {response.status_code} {response.text}"
        assert took < ANSWER_WITHIN_S, f"{what} took {took:.2f} s with the broker frozen"
        return response.json() if response.content else None


def write_operations(chorus: Chorus) -> dict[tuple[str, str, str], re.Pattern[str]]:
    """Every write operation the services' OpenAPI documents offer, with a pattern of its paths."""
    found = {}
    for service, app in chorus.apps.items():
        for path, operations in app.openapi()["paths"].items():
            parts = re.split(r"(\{[^}]+\})", path)
            pattern = re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))
            for method in operations:
                if method.upper() in {"POST", "PUT", "PATCH", "DELETE"}:
                    found[(service, method.upper(), path)] = pattern
    return found


async def pending_events(chorus: Chorus, org: str) -> list[tuple[datetime, Event[EventData]]]:
    """The events of `org` waiting in every service's outbox, with when each was written."""
    mongo = create_client(chorus.settings)
    found: list[tuple[datetime, Event[EventData]]] = []
    try:
        for service, collections in OUTBOXES.items():
            db = mongo[chorus.settings.database_name(service)]
            for collection in collections:
                query: Document = {"org": org, OUTBOX_SINCE: {"$exists": True}}
                async for doc in db[collection].find(query):
                    found += [(r["at"], decode(r["event"].encode())) for r in doc[OUTBOX]]
    finally:
        await mongo.close()
    return sorted(found, key=lambda pair: pair[0])


def key_of(event: Event[EventData]) -> tuple[str, str]:
    return event.topic.name, event.data.record_key()


async def delivered(taps: list[TopicTap], wanted: set[str]) -> None:
    """Read the taps until every wanted event id has come."""

    def seen() -> set[str]:
        return {e.id for t in taps for e in t.seen}

    async def all_there() -> bool:
        for t in taps:
            await t.collect(lambda e: False, count=1, timeout_s=0.2)
        return wanted <= seen()

    await eventually(all_there, timeout_s=120, interval_s=0)


async def test_every_write_answers_at_once_and_every_event_arrives_in_order_once_the_broker_is_back(
    chorus: Chorus, stack: local_stack.StackConfig
) -> None:
    org = new_org()
    admin, editor = chorus.headers(org, "boss", "admin"), chorus.headers(org, "ed", "editor")
    ann, bob = chorus.headers(org, "ann"), chorus.headers(org, "bob")
    content, sharing = chorus.clients["content"], chorus.clients["sharing"]

    # Before the outage: content sharing has learnt of over the broker, an advocate to erase, and
    # a webhook delivery of the content's publication to replay.
    metrics = chorus.clients["metrics"]
    published_hook = {"url": "http://127.0.0.1:9/published", "event_types": ["chorus.content.published"]}
    hooked = (await metrics.post("/v1/webhooks", json=published_hook, headers=admin)).json()
    shared_item = (await content.post("/v1/content", json=article(), headers=editor)).json()
    assert (await content.post(f"/v1/content/{shared_item['id']}/publish", headers=editor)).status_code == 200
    profile = {
        "display_name": "Cat",
        "team": "sales",
        "networks": [{"network": "linkedin", "handle": "cat", "audience_size": 100}],
    }
    assert (
        await sharing.put("/v1/advocates/me", json=profile, headers=chorus.headers(org, "cat"))
    ).status_code == 200

    async def shareable() -> bool:
        items = (await sharing.get("/v1/shareable", headers=ann)).json()["items"]
        return shared_item["id"] in [i["content_id"] for i in items]

    await eventually(shareable)

    async def publication_delivered() -> list[Any]:
        answer = await metrics.get(f"/v1/webhooks/{hooked['id']}/deliveries", headers=admin)
        return answer.json()["items"]  # type: ignore[no-any-return]

    [publication] = await eventually(publication_delivered)

    # Kudos go only to colleagues recognition knows: Ann, who enrols with sharing during the
    # outage, is first announced to recognition as an identity provider's directory would have.
    producer = EventProducer(chorus.settings, client_id="outage-tests")
    await producer.start()
    try:
        await producer.publish(Event.create(AdvocateEnrolled(advocate_id="ann"), tenant=org, source="/tests"))
    finally:
        await producer.stop()
    dan = chorus.headers(org, "dan")

    async def ann_known() -> bool:
        kudos = {"to": "ann", "message": "welcome"}
        answer = await chorus.clients["recognition"].post("/v1/kudos", json=kudos, headers=dan)
        assert answer.status_code in (201, 422), answer.text
        return answer.status_code == 201

    await eventually(ann_known, timeout_s=60)

    async def nothing_pending() -> bool:
        return not await pending_events(chorus, org)

    await eventually(nothing_pending)

    taps = [await TopicTap(chorus.settings, t.name).open() for t in TOPICS]
    write = Writes(chorus)
    try:
        with frozen(stack, "kafka"):
            # content: settings, policy, training, the workflow
            await write("content", "PUT", "/v1/settings", admin, {"daily_share_limit": 50})
            await write(
                "content", "POST", "/v1/policy/versions", admin, {"title": "Policy", "body": "Be kind"}
            )
            await write("content", "POST", "/v1/policy/acknowledgements", ann, {"version": 1})
            course_body = {"title": "Basics", "modules": [{"id": "m1", "title": "One", "body": "text"}]}
            course = await write("content", "POST", "/v1/courses", admin, course_body)
            await write(
                "content", "PUT", f"/v1/courses/{course['id']}", admin, {**course_body, "title": "Basics 2"}
            )
            await write("content", "POST", f"/v1/courses/{course['id']}/modules/m1/complete", ann)
            submitted = await write("content", "POST", "/v1/content", ann, article())
            await write(
                "content", "POST", f"/v1/content/{submitted['id']}/reject", editor, {"reason": "Duplicate"}
            )
            item = await write("content", "POST", "/v1/content", editor, article(title="Second"))
            await write("content", "PATCH", f"/v1/content/{item['id']}", editor, {"tags": ["news"]})
            await write("content", "POST", f"/v1/content/{item['id']}/publish", editor)
            await write("content", "PATCH", f"/v1/content/{item['id']}", editor, {"tags": ["news", "lyon"]})
            await write("content", "POST", f"/v1/content/{item['id']}/archive", editor)

            # sharing: enrolment, profile, shares (now and scheduled), erasure, a click
            networks = [{"network": "linkedin", "handle": "h", "audience_size": 500}]
            await write(
                "sharing", "PUT", "/v1/advocates/me", ann, {"display_name": "Ann", "networks": networks}
            )
            await write(
                "sharing",
                "PUT",
                "/v1/advocates/me",
                ann,
                {"display_name": "Ann", "team": "red", "networks": networks},
            )
            await write(
                "sharing", "PUT", "/v1/advocates/bob", admin, {"display_name": "Bob", "networks": networks}
            )
            share_body = {"content_id": shared_item["id"], "network": "linkedin", "message": "Look"}
            share = await write("sharing", "POST", "/v1/shares", ann, share_body)
            soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
            scheduled = await write(
                "sharing", "POST", "/v1/shares", ann, {**share_body, "scheduled_at": soon}
            )
            await write("sharing", "DELETE", "/v1/advocates/cat", admin)

            # sharing's SCIM directory, as an identity provider calls it
            scim = {**admin, "Content-Type": "application/scim+json"}
            erin_body = {"schemas": [SCIM_USER], "userName": "erin@example.com", "active": True}
            erin = await write("sharing", "POST", "/scim/v2/Users", scim, erin_body)
            erin_path = f"/scim/v2/Users/{erin['id']}"
            await write("sharing", "PUT", erin_path, scim, {**erin_body, "displayName": "Erin"})
            await write("sharing", "PATCH", erin_path, scim, scim_patch("replace", "title", "Chief"))
            search = {"schemas": [SCIM_SEARCH], "filter": 'userName eq "erin@example.com"'}
            found = await write("sharing", "POST", "/scim/v2/Users/.search", scim, search)
            assert [u["id"] for u in found["Resources"]] == [erin["id"]]
            team_body = {"schemas": [SCIM_GROUP], "displayName": "blue", "members": [{"value": erin["id"]}]}
            team = await write("sharing", "POST", "/scim/v2/Groups", scim, team_body)
            team_path = f"/scim/v2/Groups/{team['id']}"
            await write("sharing", "PUT", team_path, scim, {**team_body, "displayName": "navy"})
            await write("sharing", "PATCH", team_path, scim, scim_patch("remove", "members"))
            await write("sharing", "POST", "/scim/v2/Groups/.search", scim, {"schemas": [SCIM_SEARCH]})
            await write("sharing", "DELETE", team_path, scim)
            await write("sharing", "DELETE", erin_path, scim)
            started = time.monotonic()
            visit = await sharing.get(
                f"/r/{share['code']}", headers={"User-Agent": "Mozilla/5.0 Firefox/130.0"}
            )
            assert visit.status_code == 302 and time.monotonic() - started < ANSWER_WITHIN_S

            # metrics: keys, settings, goals, surveys, a conversion, webhook endpoints
            key = await write("metrics", "POST", "/v1/api-keys", admin, {"name": "crm"})
            await write("metrics", "DELETE", f"/v1/api-keys/{key['key_id']}", admin)
            await write(
                "metrics",
                "PUT",
                "/v1/metrics/settings",
                admin,
                {"cpc": "0.5", "cpm": "10", "currency": "EUR"},
            )
            goal = await write(
                "metrics",
                "POST",
                "/v1/goals",
                admin,
                {"name": "Reach", "metric": "reach", "target": 1000, "horizon_months": 1},
            )
            await write("metrics", "DELETE", f"/v1/goals/{goal['goal_id']}", admin)
            questions = [{"id": "q1", "text": "Would you recommend us?", "type": "nps"}]
            survey = await write(
                "metrics",
                "POST",
                "/v1/surveys",
                admin,
                {"kind": "enps", "title": "Pulse", "questions": questions},
            )
            await write(
                "metrics", "POST", f"/v1/surveys/{survey['survey_id']}/responses", ann, {"answers": {"q1": 9}}
            )
            lead = await write(
                "metrics", "POST", "/v1/conversions", admin, {"type": "lead", "customer_id": "cust-1"}
            )
            endpoint = await write(
                "metrics",
                "POST",
                "/v1/webhooks",
                admin,
                {"url": "http://127.0.0.1:9/hook", "event_types": ["chorus.lead.captured"]},
            )
            hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
            await write(
                "metrics",
                "POST",
                f"/v1/webhooks/{endpoint['id']}/replays",
                admin,
                {"from": hour_ago, "to": datetime.now(UTC).isoformat()},
            )
            await write("metrics", "DELETE", f"/v1/webhooks/{endpoint['id']}", admin)
            await write(
                "metrics", "POST", f"/v1/webhooks/{hooked['id']}/deliveries/{publication['id']}/replay", admin
            )

            # recognition: rules, badges, kudos, rewards and redemptions, corrections, goals
            rules = (await chorus.clients["recognition"].get("/v1/rules", headers=admin)).json()["rules"]
            rules = {
                **rules,
                "kudos_weekly_allowance": 50,
                "points": {**rules["points"], "kudos_received": 50},
            }
            await write("recognition", "PUT", "/v1/rules", admin, {"rules": rules})
            badge = {
                "badge_id": "thanked",
                "name": "Thanked",
                "description": "Colleagues said thanks",
                "criteria": "Two kudos",
                "image_url": "https://example.com/thanked.png",
                "metric": "kudos_received",
                "threshold": 2,
            }
            await write("recognition", "POST", "/v1/badges", admin, badge)
            for n in range(3):
                await write("recognition", "POST", "/v1/kudos", bob, {"to": "ann", "message": f"thanks {n}"})
            reward = await write("recognition", "POST", "/v1/rewards", admin, {"name": "Mug", "cost": 50})
            hook = {"url": "http://127.0.0.1:9/fulfil", "secret": "fulfilment-secret-0123456789"}
            await write("recognition", "PUT", "/v1/webhooks/fulfilment", admin, hook)
            kept = await write("recognition", "POST", f"/v1/rewards/{reward['reward_id']}/redemptions", ann)
            await write("recognition", "POST", f"/v1/redemptions/{kept['redemption_id']}/approve", admin)
            await write("recognition", "POST", f"/v1/redemptions/{kept['redemption_id']}/fulfil", admin)

            async def fulfilment_delivery() -> list[Any]:
                answer = await chorus.clients["recognition"].get(
                    "/v1/webhooks/fulfilment/deliveries", headers=admin
                )
                return answer.json()["items"]  # type: ignore[no-any-return]

            [fulfilment, *_] = await eventually(fulfilment_delivery)
            await write(
                "recognition",
                "POST",
                f"/v1/webhooks/fulfilment/deliveries/{fulfilment['id']}/replay",
                admin,
            )
            refused = await write(
                "recognition", "POST", f"/v1/rewards/{reward['reward_id']}/redemptions", ann
            )
            await write("recognition", "POST", f"/v1/redemptions/{refused['redemption_id']}/reject", admin)
            ledger = (await chorus.clients["recognition"].get("/v1/me/ledger", headers=ann)).json()["items"]
            kudos_entry = next(e for e in ledger if e["kind"] == "kudos_received")
            await write(
                "recognition",
                "POST",
                f"/v1/ledger/{kudos_entry['entry_id']}/reversal",
                admin,
                {"reason": "oops"},
            )
            await write(
                "recognition",
                "POST",
                "/v1/corrections/lead-invalidations",
                admin,
                {"conversion_id": lead["conversion_id"], "reason": "spam"},
            )
            my_goal = await write(
                "recognition", "POST", "/v1/me/goals", ann, {"kind": "audience", "target": 10}
            )
            await write("recognition", "DELETE", f"/v1/me/goals/{my_goal['goal_id']}", ann)

            for service, client in chorus.clients.items():
                ready = await client.get("/readyz")
                assert ready.status_code == 200, (service, ready.json())

            async def scheduled_share_sent() -> bool:
                shares = (await sharing.get("/v1/shares", headers=ann)).json()["items"]
                return any(s["id"] == scheduled["id"] and s["status"] == "sent" for s in shares)

            await eventually(scheduled_share_sent)
            written = await pending_events(chorus, org)

        # Every write that emits an event queued it while the broker was away.
        types = Counter(e.type for _, e in written)
        assert types >= Counter(
            {
                "chorus.settings.updated": 1,
                "chorus.policy.published": 1,
                "chorus.policy.acknowledged": 1,
                "chorus.course.completed": 1,
                "chorus.content.submitted": 1,
                "chorus.content.rejected": 1,
                "chorus.content.published": 1,
                "chorus.content.updated": 1,
                "chorus.content.archived": 1,
                "chorus.advocate.enrolled": 2,
                "chorus.advocate.updated": 1,
                "chorus.advocate.erased": 1,
                "chorus.share.made": 2,
                "chorus.lead.captured": 1,
                "chorus.api_key.issued": 1,
                "chorus.api_key.revoked": 1,
                "chorus.reward.granted": 4,  # three kudos and the reversal of one
                "chorus.badge.awarded": 1,
                "chorus.reward.redeemed": 5,
            }
        ), types
        await delivered(taps, {e.id for _, e in written})
    finally:
        for t in taps:
            await t.close()

    # Once per id as consumers see it, in the order written per key, and no event twice under
    # two ids (a resend keeps its id).
    ours = [e for t in taps for e in t.seen if e.tenant == org]
    expected_by_key: dict[tuple[str, str], list[str]] = {}
    for _, event in written:
        expected_by_key.setdefault(key_of(event), []).append(event.id)
    arrived_by_key: dict[tuple[str, str], list[str]] = {}
    for event in ours:
        ids = arrived_by_key.setdefault(key_of(event), [])
        if event.id not in ids:
            ids.append(event.id)
    for key, expected in expected_by_key.items():
        arrived = [i for i in arrived_by_key.get(key, []) if i in expected]
        assert arrived == expected, key
    written_ids = {e.id for _, e in written}
    after_freeze = {e.id for e in ours if e.topic.name in ONLY_FROM_WRITES}
    assert after_freeze == {e.id for _, e in written if e.topic.name in ONLY_FROM_WRITES}
    assert written_ids <= {e.id for e in ours}
    # The click the redirect took while the broker was away came too.
    assert any(e.type == "chorus.click.recorded" and e.data.share_id == share["id"] for e in ours)  # type: ignore[attr-defined]
    # And per key, a reader's view: one advocate's profile events, one item's workflow.
    by_id = {e.id: e for _, e in written}
    advocate_ann = [by_id[i].type for i in expected_by_key[("chorus.advocates", "ann")]]
    assert advocate_ann == ["chorus.advocate.enrolled", "chorus.advocate.updated"]
    workflow = [by_id[i].type for i in expected_by_key[("chorus.content", item["id"])]]
    assert workflow == [
        "chorus.content.published",
        "chorus.content.updated",
        "chorus.content.archived",
    ], workflow
    redeemed = [
        (by_id[i].data.redemption_id, by_id[i].data.status)  # type: ignore[attr-defined]
        for i in expected_by_key[("chorus.recognition", "ann")]
        if by_id[i].type == "chorus.reward.redeemed"
    ]
    assert redeemed == [
        (kept["redemption_id"], "requested"),
        (kept["redemption_id"], "approved"),
        (kept["redemption_id"], "fulfilled"),
        (refused["redemption_id"], "requested"),
        (refused["redemption_id"], "rejected"),
    ]
    # Every write operation the services' OpenAPI documents offer was driven above.
    not_driven = [
        operation
        for operation, pattern in write_operations(chorus).items()
        if not any((s, m) == operation[:2] and pattern.fullmatch(p) for s, m, p in write.sent)
    ]
    assert not_driven == []


async def test_a_frozen_broker_fails_no_liveness_probe(
    chorus: Chorus, stack: local_stack.StackConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="aiokafka")
    org = new_org()
    admin = chorus.headers(org, "boss", "admin")

    async def all_alive() -> None:
        for service, client in chorus.clients.items():
            alive = await client.get("/healthz")
            assert (alive.status_code, alive.json()) == (200, {"status": "ok"}), service

    with frozen(stack, "kafka"):
        # A write queues its event for a relay that cannot send it, and every consumer's polls
        # and heartbeats go unanswered: what a broker outage does to a running service. Each
        # waits it out, so the probe answers as before all along.
        saved = await chorus.clients["content"].put(
            "/v1/settings", json={"daily_share_limit": 7}, headers=admin
        )
        assert saved.status_code == 200, saved.text

        async def consumers_lost_the_broker() -> bool:
            await all_alive()
            return "Heartbeat session expired" in caplog.text  # aiokafka's, past the session timeout

        await eventually(consumers_lost_the_broker, timeout_s=120)

    async def nothing_pending() -> bool:
        return not await pending_events(chorus, org)

    await eventually(nothing_pending, timeout_s=120)
    await all_alive()
