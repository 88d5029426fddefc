"""Integration webhooks: CloudEvents POSTed to a real local receiver, signed, retried, replayed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.metrics.main import create_app
from services.metrics.settings import MetricsSettings
from services.metrics.webhooks.service import REPLAY_STALLED_AFTER, WebhookService
from services.metrics.webhooks.store import REPLAYS
from shared import idempotency, webhooks
from shared.events import Event
from shared.events.shares import ShareMade
from shared.events.training import CourseCompleted
from shared.messaging import EventProducer
from shared.mongo import create_client
from shared.settings import ChorusSettings
from shared.webhooks.engine import DELIVERIES
from tests.helpers import bearer, eventually, http_server, new_org, running_app

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


@dataclass
class Receiver:
    """An HTTP endpoint that answers 500 to its first `failures` requests, then 204."""

    failures: int = 0
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    attempts: int = 0
    url: str = ""

    async def handle(self, request: Request) -> Response:
        self.attempts += 1
        if self.attempts <= self.failures:
            return Response(status_code=500)
        self.requests.append((dict(request.headers), await request.body()))
        return Response(status_code=204)


@contextlib.asynccontextmanager
async def serve(receiver: Receiver) -> AsyncIterator[Receiver]:
    app = Starlette(routes=[Route("/hook", receiver.handle, methods=["POST"])])
    async with http_server(app) as base_url:
        receiver.url = f"{base_url}/hook"
        yield receiver


def share(org: str, share_id: str) -> Event[ShareMade]:
    return Event.create(
        ShareMade(
            share_id=share_id,
            advocate_id="ann",
            content_id="c1",
            network="linkedin",
            code="abc",
            short_url="http://x/r/abc",
            target_url="https://example.com/?utm_source=linkedin",
            shared_at=datetime.now(UTC),
        ),
        tenant=org,
        source="/tests",
    )


def openssl_signature(secret: str, timestamp: str, body: bytes, workdir: Path) -> str:
    """The shell recipe of docs/webhooks.md, run as written there (the body saved to body.json)."""
    (workdir / "body.json").write_bytes(body)
    recipe = (
        "printf '%s.' \"$TIMESTAMP\" | cat - body.json "
        "| openssl dgst -sha256 -hmac \"$SECRET\" -r | cut -d' ' -f1"
    )
    assert recipe in (REPO / "docs" / "webhooks.md").read_text()
    result = subprocess.run(
        ["sh", "-c", recipe],
        cwd=workdir,
        capture_output=True,
        check=True,
        env={"TIMESTAMP": timestamp, "SECRET": secret, "PATH": "/usr/bin:/bin"},
    )
    return "sha256=" + result.stdout.decode().strip()


async def test_events_are_delivered_signed_retried_and_replayed(
    settings: ChorusSettings, tmp_path: Path
) -> None:
    org = new_org()
    admin = bearer(settings, org=org, sub="root", roles=["admin"])
    metrics_settings = MetricsSettings(
        **{**settings.model_dump(), "webhook_retry_base_s": 0.2, "webhook_dispatch_every_s": 0.1}
    )
    producer = EventProducer(settings)
    await producer.start()
    async with serve(Receiver(failures=2)) as receiver, running_app(create_app(metrics_settings)) as api:
        created = await api.post(
            "/v1/webhooks",
            headers=admin,
            json={"url": receiver.url, "event_types": ["chorus.share.made", "chorus.lead.captured"]},
        )
        assert created.status_code == 201, created.text
        endpoint = created.json()
        secret = endpoint["secret"]
        before = datetime.now(UTC) - timedelta(seconds=1)

        wanted = share(org, "s-1")
        await producer.publish(wanted)
        await producer.publish(share(new_org(), "s-other-org"))  # another organisation's event
        await producer.publish(  # a type the endpoint did not choose
            Event.create(
                CourseCompleted(advocate_id="ann", course_id="c", title="t"), tenant=org, source="/t"
            )
        )

        # The first two attempts get a 500: the delivery is retried and lands on the third.
        await eventually(lambda: receiver.requests, timeout_s=30)
        headers, body = receiver.requests[0]
        assert receiver.attempts == 3
        assert json.loads(body)["id"] == wanted.id
        assert json.loads(body)["type"] == "chorus.share.made"
        assert headers["content-type"] == "application/cloudevents+json"
        timestamp = headers["x-chorus-timestamp"].lower()
        signature = headers["x-chorus-signature"]
        assert webhooks.verify_signature(secret, int(timestamp), body, signature, now=int(time.time()))
        assert not webhooks.verify_signature(
            secret, int(timestamp), body + b" ", signature, now=int(time.time())
        )
        assert openssl_signature(secret, timestamp, body, tmp_path) == signature

        deliveries = (await api.get(f"/v1/webhooks/{endpoint['id']}/deliveries", headers=admin)).json()[
            "items"
        ]
        assert [(d["event_id"], d["state"], d["attempts"], d["last_status"]) for d in deliveries] == [
            (wanted.id, "delivered", 3, 204)
        ]

        # A replay of the range delivers the same event again, as a new delivery.
        replay = await api.post(
            f"/v1/webhooks/{endpoint['id']}/replays",
            headers=admin,
            json={"from": before.isoformat(), "to": (datetime.now(UTC) + timedelta(seconds=1)).isoformat()},
        )
        assert replay.status_code == 202, replay.text
        await eventually(lambda: len(receiver.requests) >= 2, timeout_s=30)
        await asyncio.sleep(1)  # nothing else arrives
        assert [json.loads(b)["id"] for _, b in receiver.requests] == [wanted.id, wanted.id]
        assert receiver.requests[1][0]["x-chorus-delivery"] != headers["x-chorus-delivery"]
        status = await api.get(f"/v1/webhooks/{endpoint['id']}/replays/{replay.json()['id']}", headers=admin)
        assert status.json()["state"] == "done"
        assert status.json()["events"] == 1

        # A replay whose process stopped part way (a rollout) stays running, silent: a replica
        # resumes it, and what it had queued is not queued again.
        mongo = create_client(settings)
        try:
            replays = mongo[settings.database_name("metrics")][REPLAYS]
            stopped_at = datetime.now(UTC) - REPLAY_STALLED_AFTER - timedelta(seconds=1)
            await replays.update_one(
                {"_id": replay.json()["id"]},
                {"$set": {"state": "running", "events": 0, "progress_at": stopped_at}},
            )
        finally:
            await mongo.close()
        service: WebhookService = api._transport.app.state.webhooks  # type: ignore[attr-defined]
        assert await service.resume_replays() == 1
        status = await api.get(f"/v1/webhooks/{endpoint['id']}/replays/{replay.json()['id']}", headers=admin)
        assert (status.json()["state"], status.json()["events"]) == ("done", 1)
        assert await service.resume_replays() == 0
        await asyncio.sleep(1)
        assert len(receiver.requests) == 2
    await producer.stop()


async def test_endpoints_are_validated_and_private_to_their_organisation(settings: ChorusSettings) -> None:
    org = new_org()
    admin = bearer(settings, org=org, sub="root", roles=["admin"])
    async with running_app(create_app(MetricsSettings(**settings.model_dump()))) as api:
        for body, field_name in [
            ({"url": "http://example.com/hook", "event_types": ["chorus.share.made"]}, "url"),
            ({"url": "ftp://example.com/hook", "event_types": ["chorus.share.made"]}, "url"),
            ({"url": "https://example.com/hook", "event_types": ["chorus.nothing.happened"]}, "event_types"),
            ({"url": "https://example.com/hook", "event_types": []}, "event_types"),
        ]:
            refused = await api.post("/v1/webhooks", headers=admin, json=body)
            assert refused.status_code == 422, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["errors"][0]["field"] == field_name
        assert (await api.get("/v1/webhooks", headers=admin)).json()["items"] == []

        created = await api.post(
            "/v1/webhooks",
            headers=admin,
            json={"url": "https://example.com/hook", "event_types": ["chorus.share.made"]},
        )
        endpoint_id = created.json()["id"]
        editor = bearer(settings, org=org, sub="ed", roles=["editor"])
        assert (await api.get("/v1/webhooks", headers=editor)).status_code == 403
        stranger = bearer(settings, org=new_org(), sub="root", roles=["admin"])
        assert (await api.get(f"/v1/webhooks/{endpoint_id}", headers=stranger)).status_code == 404
        assert (await api.delete(f"/v1/webhooks/{endpoint_id}", headers=stranger)).status_code == 404
        assert (await api.get("/v1/webhooks", headers=stranger)).json()["items"] == []
        listed = (await api.get("/v1/webhooks", headers=admin)).json()["items"]
        assert [e["id"] for e in listed] == [endpoint_id]
        assert "secret" not in listed[0]
        assert (await api.delete(f"/v1/webhooks/{endpoint_id}", headers=admin)).status_code == 204
        assert (await api.get("/v1/webhooks", headers=admin)).json()["items"] == []


@contextlib.asynccontextmanager
async def slow_and_fast(seen: list[str]) -> AsyncIterator[str]:
    """Two receivers noting in `seen`, in order, what happens to them: /slow takes a request and
    never answers (its attempt ends when the sender drops the connection, at its deadline),
    /fast answers 204 at once. The base URL."""

    async def slow(request: Request) -> Response:
        await request.body()
        seen.append("slow received")
        while (await request.receive())["type"] != "http.disconnect":
            pass
        seen.append("slow attempt ended")
        return Response(status_code=204)

    async def fast(request: Request) -> Response:
        seen.append("fast received")
        return Response(status_code=204)

    routes = [Route("/slow", slow, methods=["POST"]), Route("/fast", fast, methods=["POST"])]
    async with http_server(Starlette(routes=routes)) as base_url:
        yield base_url


async def test_a_receiver_that_never_answers_holds_up_no_other_organisations_delivery(
    settings: ChorusSettings,
) -> None:
    slow_org, fast_org = new_org(), new_org()
    # A deadline far beyond what the fast delivery takes, however loaded the machine: the fast
    # one must come while the slow attempt is still waiting for its answer.
    metrics_settings = MetricsSettings(
        **{**settings.model_dump(), "webhook_dispatch_every_s": 0.1, "webhook_timeout_s": 60}
    )
    seen: list[str] = []
    producer = EventProducer(settings)
    await producer.start()
    try:
        async with slow_and_fast(seen) as base_url, running_app(create_app(metrics_settings)) as api:
            for org, path in ((slow_org, "/slow"), (fast_org, "/fast")):
                created = await api.post(
                    "/v1/webhooks",
                    headers=bearer(settings, org=org, sub="root", roles=["admin"]),
                    json={"url": f"{base_url}{path}", "event_types": ["chorus.share.made"]},
                )
                assert created.status_code == 201, created.text

            await producer.publish(share(slow_org, "s-slow"))
            await eventually(lambda: "slow received" in seen, timeout_s=30)
            await producer.publish(share(fast_org, "s-fast"))
            # Long enough for the slow attempt's deadline too: a dispatcher that waited for it
            # delivers the fast one after it ended, and the order below says so.
            await eventually(lambda: "fast received" in seen, timeout_s=120)
            assert seen[:2] == ["slow received", "fast received"]
    finally:
        await producer.stop()


async def test_a_replay_retried_with_its_idempotency_key_delivers_the_range_once_more_only(
    settings: ChorusSettings,
) -> None:
    org = new_org()
    admin = bearer(settings, org=org, sub="root", roles=["admin"])
    metrics_settings = MetricsSettings(**{**settings.model_dump(), "webhook_dispatch_every_s": 0.1})
    producer = EventProducer(settings)
    await producer.start()
    mongo = create_client(settings)
    db = mongo[settings.database_name("metrics")]
    try:
        async with serve(Receiver()) as receiver, running_app(create_app(metrics_settings)) as api:
            created = await api.post(
                "/v1/webhooks",
                headers=admin,
                json={"url": receiver.url, "event_types": ["chorus.share.made"]},
            )
            endpoint_id = created.json()["id"]
            before = datetime.now(UTC) - timedelta(seconds=1)
            await producer.publish(share(org, "s-1"))
            await eventually(lambda: receiver.requests, timeout_s=30)

            replays = f"/v1/webhooks/{endpoint_id}/replays"
            keyed = {**admin, "Idempotency-Key": "replay-1"}
            until = datetime.now(UTC) + timedelta(seconds=1)
            span = {"from": before.isoformat(), "to": until.isoformat()}
            first = await api.post(replays, headers=keyed, json=span)
            assert first.status_code == 202, first.text
            assert "idempotent-replayed" not in first.headers
            await eventually(lambda: len(receiver.requests) == 2, timeout_s=30)

            # The answer was lost: the client sends the same request again, and is answered the
            # replay already started.
            again = await api.post(replays, headers=keyed, json=span)
            assert (again.status_code, again.json()) == (202, first.json())
            assert again.headers["idempotent-replayed"] == "true"

            # The first request started the replay, then its process stopped before its answer
            # was stored: its key is taken over, and the retry finds the replay the key started.
            await db[idempotency.COLLECTION].update_one(
                {"org": org},
                {"$set": {"state": "running", "abandoned_at": datetime.now(UTC)}, "$unset": {"response": ""}},
            )
            taken_over = await api.post(replays, headers=keyed, json=span)
            assert (taken_over.status_code, taken_over.json()["id"]) == (202, first.json()["id"])

            # The same key with another range is refused, naming the header.
            longer = {**span, "to": (until + timedelta(seconds=1)).isoformat()}
            refused = await api.post(replays, headers=keyed, json=longer)
            assert refused.status_code == 422, refused.text
            assert refused.json()["errors"][0]["field"] == "Idempotency-Key"

            assert await db[REPLAYS].count_documents({"org": org}) == 1
            logged = await api.get(f"/v1/webhooks/{endpoint_id}/deliveries", headers=admin)
            assert len(logged.json()["items"]) == 2  # the event's delivery, and the one replay's

            # A day on, the key's record has expired, and the client uses the key again: a new one.
            a_day_ago = datetime.now(UTC) - timedelta(hours=25)
            await db[REPLAYS].update_one({"org": org}, {"$set": {"requested_at": a_day_ago}})
            await db[idempotency.COLLECTION].delete_many({"org": org})
            later = await api.post(replays, headers=keyed, json=span)
            assert later.status_code == 202, later.text
            assert later.json()["id"] != first.json()["id"]
    finally:
        await mongo.close()
        await producer.stop()


async def test_a_delivery_replay_retried_with_its_idempotency_key_sends_the_body_once_more_only(
    settings: ChorusSettings,
) -> None:
    org = new_org()
    admin = bearer(settings, org=org, sub="root", roles=["admin"])
    metrics_settings = MetricsSettings(**{**settings.model_dump(), "webhook_dispatch_every_s": 0.1})
    producer = EventProducer(settings)
    await producer.start()
    mongo = create_client(settings)
    db = mongo[settings.database_name("metrics")]
    try:
        async with serve(Receiver()) as receiver, running_app(create_app(metrics_settings)) as api:
            created = await api.post(
                "/v1/webhooks",
                headers=admin,
                json={"url": receiver.url, "event_types": ["chorus.share.made"]},
            )
            endpoint_id = created.json()["id"]
            deliveries = f"/v1/webhooks/{endpoint_id}/deliveries"
            await producer.publish(share(org, "s-1"))
            await producer.publish(share(org, "s-2"))
            await eventually(lambda: len(receiver.requests) == 2, timeout_s=30)
            first_delivery, other_delivery = [
                d["id"] for d in (await api.get(deliveries, headers=admin)).json()["items"]
            ]

            replay = f"{deliveries}/{first_delivery}/replay"
            keyed = {**admin, "Idempotency-Key": "redeliver-1"}
            first = await api.post(replay, headers=keyed)
            assert first.status_code == 202, first.text
            assert "idempotent-replayed" not in first.headers
            assert first.json()["replay_of"] == first_delivery
            await eventually(lambda: len(receiver.requests) == 3, timeout_s=30)

            # The answer was lost: the client sends the same request again, and is answered the
            # delivery already queued.
            again = await api.post(replay, headers=keyed)
            assert (again.status_code, again.json()) == (202, first.json())
            assert again.headers["idempotent-replayed"] == "true"

            # The first request queued the delivery, then its process stopped before its answer
            # was stored: its key is taken over, and the retry finds the delivery the key queued.
            await db[idempotency.COLLECTION].update_one(
                {"org": org},
                {"$set": {"state": "running", "abandoned_at": datetime.now(UTC)}, "$unset": {"response": ""}},
            )
            taken_over = await api.post(replay, headers=keyed)
            assert (taken_over.status_code, taken_over.json()["id"]) == (202, first.json()["id"])

            # The same key for another delivery is refused, naming the header.
            refused = await api.post(f"{deliveries}/{other_delivery}/replay", headers=keyed)
            assert refused.status_code == 422, refused.text
            assert refused.json()["errors"][0]["field"] == "Idempotency-Key"

            # The two events' deliveries and the one replay's: the receiver got the body twice.
            logged = (await api.get(deliveries, headers=admin)).json()["items"]
            assert sorted(d["id"] for d in logged) == sorted(
                [first_delivery, other_delivery, first.json()["id"]]
            )
            sent = [headers["x-chorus-delivery"] for headers, _ in receiver.requests]
            assert sorted(set(sent)) == sorted([first_delivery, other_delivery, first.json()["id"]])
            assert sent.count(first.json()["id"]) == 1

            # A day on, the key's record has expired, and the client uses the key again: a new one.
            a_day_ago = datetime.now(UTC) - timedelta(hours=25)
            await db[DELIVERIES].update_one({"_id": first.json()["id"]}, {"$set": {"created_at": a_day_ago}})
            await db[idempotency.COLLECTION].delete_many({"org": org})
            later = await api.post(replay, headers=keyed)
            assert later.status_code == 202, later.text
            assert later.json()["id"] not in (first.json()["id"], first_delivery)
            assert later.json()["replay_of"] == first_delivery
    finally:
        await mongo.close()
        await producer.stop()
