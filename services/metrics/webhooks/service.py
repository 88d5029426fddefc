"""Webhook use cases: endpoints, turning events into deliveries, dispatching them, replays."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from services.metrics.webhooks import domain
from services.metrics.webhooks.store import WebhookStore
from shared import webhooks
from shared.auth import Principal
from shared.errors import NotFound
from shared.events import REGISTRY, AnyEvent
from shared.messaging.replay import TopicRange
from shared.settings import ChorusSettings

log = logging.getLogger(__name__)

DISPATCH_BATCH = 50
REQUEST_TIMEOUT_S = 10.0
# Every event on every topic (clicks too) asks which endpoints want it: the answer is cached per
# organisation for a few seconds. A change made through another replica shows within that time.
ENDPOINT_CACHE_S = 5.0


class WebhookService:
    def __init__(
        self,
        settings: ChorusSettings,
        store: WebhookStore,
        *,
        retry_base_s: float,
        allow_insecure_loopback: bool,
    ) -> None:
        self._settings = settings
        self._store = store
        self._retry_base_s = retry_base_s
        self._allow_insecure_loopback = allow_insecure_loopback
        self._http = httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, follow_redirects=False)
        self._replays: set[asyncio.Task[None]] = set()
        self._endpoint_cache: dict[str, tuple[float, list[dict[str, Any]]]] = {}

    async def close(self) -> None:
        for task in self._replays:
            task.cancel()
        await asyncio.gather(*self._replays, return_exceptions=True)
        await self._http.aclose()

    # --- endpoints -------------------------------------------------------------------------

    async def create_endpoint(
        self, principal: Principal, url: str, event_types: list[str], description: str | None
    ) -> dict[str, Any]:
        endpoint = {
            "_id": uuid.uuid4().hex,
            "org": principal.org,
            "url": domain.check_url(url, allow_insecure_loopback=self._allow_insecure_loopback),
            "event_types": domain.check_event_types(event_types),
            "description": description,
            # Kept as is: signing needs it. Shown to the admin once, at creation.
            "secret": f"whsec_{secrets.token_urlsafe(32)}",
            "active": True,
            "created_by": principal.sub,
            "created_at": datetime.now(UTC),
        }
        await self._store.add_endpoint(endpoint)
        self._endpoint_cache.pop(principal.org, None)
        return endpoint

    async def list_endpoints(self, principal: Principal) -> list[dict[str, Any]]:
        return await self._store.endpoints(principal.org)

    async def get_endpoint(self, principal: Principal, endpoint_id: str) -> dict[str, Any]:
        endpoint = await self._store.endpoint(principal.org, endpoint_id)
        if endpoint is None:
            raise NotFound(f"no webhook endpoint {endpoint_id}")
        return endpoint

    async def delete_endpoint(self, principal: Principal, endpoint_id: str) -> None:
        if not await self._store.deactivate(principal.org, endpoint_id, datetime.now(UTC)):
            raise NotFound(f"no webhook endpoint {endpoint_id}")
        self._endpoint_cache.pop(principal.org, None)

    async def _active_endpoints(self, org: str) -> list[dict[str, Any]]:
        cached = self._endpoint_cache.get(org)
        if cached is None or cached[0] < time.monotonic():
            cached = (time.monotonic() + ENDPOINT_CACHE_S, await self._store.endpoints(org))
            self._endpoint_cache[org] = cached
        return cached[1]

    async def deliveries(self, principal: Principal, endpoint_id: str, limit: int) -> list[dict[str, Any]]:
        await self.get_endpoint(principal, endpoint_id)
        return await self._store.deliveries(principal.org, endpoint_id, limit)

    # --- events become deliveries ----------------------------------------------------------

    async def enqueue(self, event: AnyEvent, *, replay_id: str | None = None, only: str | None = None) -> int:
        """A pending delivery per endpoint of the event's organisation that wants its type."""
        created = 0
        now = datetime.now(UTC)
        for endpoint in await self._active_endpoints(event.tenant):
            if event.type not in endpoint["event_types"] or (only is not None and endpoint["_id"] != only):
                continue
            created += await self._store.add_delivery(
                {
                    "_id": domain.delivery_id(endpoint["_id"], event.id, replay_id),
                    "org": event.tenant,
                    "endpoint_id": endpoint["_id"],
                    "event_id": event.id,
                    "event_type": event.type,
                    "event_time": event.time,
                    "replay_id": replay_id,
                    "body": event.to_json_bytes().decode(),
                    "state": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
            )
        return created

    # --- dispatch --------------------------------------------------------------------------

    async def dispatch_due(self) -> int:
        """Send what is due (a Periodic calls this); returns how many were delivered."""
        now = datetime.now(UTC)
        delivered = 0
        for candidate in await self._store.due(now, DISPATCH_BATCH):
            delivery = await self._store.claim(candidate, now + domain.claim_lease())
            if delivery is None:
                continue
            delivered += await self._send(delivery)
        return delivered

    async def _send(self, delivery: dict[str, Any]) -> bool:
        endpoint = await self._store.endpoint(delivery["org"], delivery["endpoint_id"])
        if endpoint is None:
            await self._store.record_attempt(delivery["_id"], {"state": "cancelled"})
            return False
        body = delivery["body"].encode()
        headers = {
            "Content-Type": "application/cloudevents+json",
            "User-Agent": "Chorus-Webhooks/1",
            **webhooks.signed_headers(endpoint["secret"], int(time.time()), body, delivery["_id"]),
        }
        status: int | None = None
        error: str | None = None
        try:
            response = await self._http.post(endpoint["url"], content=body, headers=headers)
            status = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        now = datetime.now(UTC)
        outcome = domain.after_attempt(delivery["attempts"], status, now, self._retry_base_s)
        fields: dict[str, Any] = {
            "state": outcome.state,
            "last_status": status,
            "last_error": error,
            "last_attempt_at": now,
        }
        if outcome.next_attempt_at is not None:
            fields["next_attempt_at"] = outcome.next_attempt_at
        if outcome.state == "delivered":
            fields["delivered_at"] = now
        await self._store.record_attempt(delivery["_id"], fields)
        if outcome.state == "failed":
            log.warning(
                "webhook delivery %s gave up after %s attempts", delivery["_id"], delivery["attempts"]
            )
        return outcome.state == "delivered"

    # --- replays ---------------------------------------------------------------------------

    async def start_replay(
        self, principal: Principal, endpoint_id: str, since: datetime, until: datetime
    ) -> dict[str, Any]:
        endpoint = await self.get_endpoint(principal, endpoint_id)
        replay = {
            "_id": uuid.uuid4().hex,
            "org": principal.org,
            "endpoint_id": endpoint_id,
            "from": since,
            "to": until,
            "state": "running",
            "events": 0,
            "requested_by": principal.sub,
            "requested_at": datetime.now(UTC),
        }
        await self._store.add_replay(replay)
        task = asyncio.create_task(self._replay(replay, set(endpoint["event_types"])))
        self._replays.add(task)
        task.add_done_callback(self._replays.discard)
        return replay

    async def get_replay(self, principal: Principal, endpoint_id: str, replay_id: str) -> dict[str, Any]:
        replay = await self._store.replay(principal.org, endpoint_id, replay_id)
        if replay is None:
            raise NotFound(f"no replay {replay_id}")
        return replay

    async def _replay(self, replay: dict[str, Any], event_types: set[str]) -> None:
        """Read the range back from Kafka (by record time) and deliver it again."""
        topics = sorted({REGISTRY[t].topic.name for t in event_types})
        count = 0
        try:
            async for batch in TopicRange(
                self._settings.kafka_bootstrap, topics, since=replay["from"], until=replay["to"]
            ).batches():
                for item in batch.items:
                    event = item.event
                    if event.tenant == replay["org"] and event.type in event_types:
                        count += await self.enqueue(
                            event, replay_id=replay["_id"], only=replay["endpoint_id"]
                        )
            await self._store.update_replay(replay["_id"], {"state": "done", "events": count})
        except Exception as exc:
            log.exception("webhook replay %s failed", replay["_id"])
            await self._store.update_replay(
                replay["_id"], {"state": "failed", "error": str(exc), "events": count}
            )
