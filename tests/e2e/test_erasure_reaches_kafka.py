"""Erasure reaches Kafka (issue 19): after an advocate is erased, nothing anyone can read on any
topic, in a metrics rebuild or in a webhook replay names them or says anything about them.

An advocate with an e-mail address for an id enrols (team, department, location, name), submits
their own article, acknowledges the policy, shares, is clicked, brings a lead and scores points,
while an integration's webhook receives the events (with the advocate in them: integrators are
entitled to that). Then they are erased. Once their vault entry is shredded (the services run
with a 30 s grace, docs/erasure.md), every record of every topic is read from offset 0 with a
plain Kafka client, metrics rebuilds its projections from the topics, and the webhook replays
the whole time range: none of it holds any of the advocate's personal data.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo import AsyncMongoClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.metrics.rebuild import rebuild
from services.metrics.settings import MetricsSettings
from shared.events.topics import TOPICS
from tests.e2e.conftest import RunningServices
from tests.e2e.journey import click_lead_and_points, until_shareable
from tests.helpers import bearer, eventually, http_server, new_org

pytestmark = pytest.mark.e2e


@dataclass
class Receiver:
    bodies: list[bytes] = field(default_factory=list)

    async def handle(self, request: Request) -> Response:
        self.bodies.append(await request.body())
        return Response(status_code=204)


@contextlib.asynccontextmanager
async def receiving() -> AsyncIterator[tuple[Receiver, str]]:
    receiver = Receiver()
    async with http_server(Starlette(routes=[Route("/hook", receiver.handle, methods=["POST"])])) as base:
        yield receiver, f"{base}/hook"


async def every_record(bootstrap: str) -> list[bytes]:
    """Every record of every topic (and dead-letter topic), from offset 0: key, value, headers."""
    names = [name for topic in TOPICS for name in (topic.name, topic.dlq)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        # A consumer without a subscription learns topics only when asked (as tests/helpers.tap).
        await consumer._client.set_topics(names)
        tps = [
            TopicPartition(name, p)
            for name in names
            for p in sorted(consumer.partitions_for_topic(name) or ())
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > 0}
        out: list[bytes] = []
        while remaining:
            fetched = await consumer.getmany(*remaining, timeout_ms=500)
            for records in fetched.values():
                for record in records:
                    headers = b" ".join(k.encode() + b"=" + v for k, v in record.headers or ())
                    out.append(b" ".join((record.key or b"", record.value or b"", headers)))
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        return out
    finally:
        await consumer.stop()


def readable(personal: list[str], blobs: list[bytes]) -> set[str]:
    """Which of the personal values stand in any of the blobs, as they are or JSON-escaped."""
    forms = {value: {value.encode(), json.dumps(value)[1:-1].encode()} for value in personal}
    return {value for value, encoded in forms.items() for blob in blobs for form in encoded if form in blob}


async def test_nothing_an_erased_advocate_left_on_the_topics_can_be_read(services: RunningServices) -> None:
    org, uid = new_org(), uuid.uuid4().hex[:10]
    urls, settings = services.urls, services.settings
    sub = f"erin.{uid}@example.com"
    personal = [
        sub,
        f"Zeppelin crew {uid}",  # team
        f"Airships {uid}",  # department
        f"Lakehurst {uid}",  # location
        f"Erin Example {uid}",  # name
        f"https://pics.example.com/erin-{uid}.png",  # picture
        f"My own thoughts on airships {uid}",  # her own article's title
        f"Written by me, {uid}",  # and summary
    ]
    advocate = bearer(settings, org=org, sub=sub, roles=["advocate"])
    editor = bearer(settings, org=org, sub=f"eddie.{uid}@example.com", roles=["editor"])
    admin = bearer(settings, org=org, sub=f"root.{uid}@example.com", roles=["admin"])
    started = datetime.now(UTC) - timedelta(seconds=5)
    mongo: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongo_url, tz_aware=True)
    prefix = f"{settings.mongo_db_prefix}e2e"

    async with receiving() as (receiver, hook_url), httpx.AsyncClient(timeout=30) as http:
        endpoint = await http.post(
            f"{urls['metrics']}/v1/webhooks",
            headers=admin,
            json={
                "url": hook_url,
                "event_types": [
                    "chorus.advocate.enrolled",
                    "chorus.share.made",
                    "chorus.click.recorded",
                    "chorus.lead.captured",
                    "chorus.reward.granted",
                    "chorus.content.submitted",
                    "chorus.policy.acknowledged",
                ],
            },
        )
        assert endpoint.status_code == 201, endpoint.text
        endpoint_id = endpoint.json()["id"]

        # --- the advocate's life in the program ----------------------------------------------
        enrolled = await http.put(
            f"{urls['sharing']}/v1/advocates/me",
            headers=advocate,
            json={
                "display_name": personal[4],
                "team": personal[1],
                "department": personal[2],
                "location": personal[3],
                "avatar_url": personal[5],
                "name_visible": True,
                "networks": [{"network": "linkedin", "handle": f"erin-{uid}", "audience_size": 300}],
            },
        )
        assert enrolled.is_success, enrolled.text
        own = await http.post(
            f"{urls['content']}/v1/content",
            headers=advocate,
            json={
                "type": "article",
                "title": personal[6],
                "summary": personal[7],
                "url": "https://example.com/own",
            },
        )
        assert own.status_code == 201, own.text
        policy = await http.post(
            f"{urls['content']}/v1/policy/versions",
            headers=admin,
            json={"title": "Policy", "body": "Be kind"},
        )
        assert policy.status_code == 201, policy.text
        acknowledged = await http.post(
            f"{urls['content']}/v1/policy/acknowledgements",
            headers=advocate,
            json={"version": policy.json()["version"]},
        )
        assert acknowledged.is_success, acknowledged.text

        created = await http.post(
            f"{urls['content']}/v1/content",
            headers=editor,
            json={"type": "article", "title": "Company news", "url": "https://example.com/news"},
        )
        content_id = created.json()["id"]
        assert (
            await http.post(f"{urls['content']}/v1/content/{content_id}/publish", headers=editor)
        ).is_success

        await until_shareable(http, urls, advocate, content_id)
        shared = await http.post(
            f"{urls['sharing']}/v1/shares",
            headers=advocate,
            json={"content_id": content_id, "network": "linkedin", "message": "Worth a read"},
        )
        assert shared.status_code == 201, shared.text
        await click_lead_and_points(
            http, urls, shared.json()["code"], advocate=advocate, integrator=admin, customer_id=f"crm-{uid}"
        )
        # Integrators get the advocate in their events while the advocate is in the program.
        await eventually(lambda: {sub, personal[1]} <= readable(personal, receiver.bodies), timeout_s=60)
        # ...and the topics carry the events, none of it readable even now.
        assert readable(personal, await every_record(settings.kafka_bootstrap)) == set()

        # --- erasure ---------------------------------------------------------------------------
        erased = await http.delete(f"{urls['sharing']}/v1/advocates/{sub}", headers=admin)
        assert erased.status_code == 204, erased.text
        vault = mongo[f"{prefix}_vault"]["people"]
        assert await vault.find_one({"org": org, "sub": sub}) is not None  # until every service has erased

        async def shredded() -> bool:
            return await vault.find_one({"org": org, "sub": sub}) is None

        await eventually(shredded, timeout_s=90, interval_s=1)

        # --- every topic from the beginning ----------------------------------------------------
        assert readable(personal, await every_record(settings.kafka_bootstrap)) == set()

        # --- a webhook replay of the whole time -----------------------------------------------
        before_replay = len(receiver.bodies)
        replay = await http.post(
            f"{urls['metrics']}/v1/webhooks/{endpoint_id}/replays",
            headers=admin,
            json={"from": started.isoformat(), "to": datetime.now(UTC).isoformat()},
        )
        assert replay.status_code == 202, replay.text

        async def replay_done() -> bool:
            state = await http.get(
                f"{urls['metrics']}/v1/webhooks/{endpoint_id}/replays/{replay.json()['id']}", headers=admin
            )
            return (
                state.json()["state"] == "done"
                and len(receiver.bodies) - before_replay >= state.json()["events"]
            )

        await eventually(replay_done, timeout_s=90)
        replayed = receiver.bodies[before_replay:]
        assert len(replayed) >= 5  # enrolment, submission, acknowledgement, share, click, lead, points
        assert readable(personal, replayed) == set()
        # The delivery log keeps nothing of the advocate either: no single delivery to replay.
        log = await http.get(
            f"{urls['metrics']}/v1/webhooks/{endpoint_id}/deliveries?limit=200", headers=admin
        )
        assert readable(personal, [json.dumps(log.json()).encode()]) == set()

    # --- a rebuild of metrics from the topics ----------------------------------------------------
    rebuilt = await rebuild(
        MetricsSettings(
            kafka_bootstrap=settings.kafka_bootstrap, mongo_url=settings.mongo_url, mongo_db_prefix=prefix
        ),
        lambda done, total: None,
    )
    assert rebuilt.events > 0
    metrics_db = mongo[f"{prefix}_metrics"]
    left = []
    for name in await metrics_db.list_collection_names():
        async for doc in metrics_db[name].find({"org": org}):
            if name == "erased_advocates":
                # The one exception, and it expires: metrics keeps the fact of the erasure until an
                # hour after the shredding, so that no event still naming them counts them again.
                assert doc["forget_at"] <= datetime.now(UTC) + timedelta(hours=2)
                continue
            if found := readable(personal, [json.dumps(doc, default=str).encode()]):
                left.append((name, found))
    assert left == [], left
    await mongo.close()
