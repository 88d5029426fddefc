"""Webhook use cases: endpoints, turning events into deliveries, range replays. Sending, retries,
the delivery log and replaying one delivery are the engine's (shared/webhooks/engine.py)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from services.metrics.webhooks import domain
from services.metrics.webhooks.store import Endpoint, Replay, WebhookStore
from shared.auth import Principal
from shared.clock import Clock, utc_now
from shared.errors import Conflict, NotFound, found
from shared.events import REGISTRY, AnyEvent
from shared.events.advocates import AdvocateErased
from shared.events.personal import subs_in
from shared.ids import id_for_request
from shared.messaging.replay import TopicRange
from shared.messaging.security import kafka_security
from shared.mongo import outliving_request
from shared.settings import ChorusSettings
from shared.ttl_cache import TtlCache
from shared.vault import Vault
from shared.webhooks.engine import Delivery, DeliveryStore, Target, WebhookEngine

log = logging.getLogger(__name__)

# Every event on every topic (clicks too) asks which endpoints want it: the answer is cached per
# organisation for a few seconds. A change made through another replica shows within that time.
ENDPOINT_CACHE_S = 5.0
# A running replay's task says so after every batch it reads back; one silent this long stopped
# with its process (a restart, a rollout) and is resumed by a replica's `resume_replays`.
REPLAY_STALLED_AFTER = timedelta(minutes=2)
RESUME_REPLAYS_EVERY_S = 30.0


class WebhookService:
    def __init__(
        self,
        settings: ChorusSettings,
        store: WebhookStore,
        deliveries: DeliveryStore,
        *,
        retry_base_s: float,
        timeout_s: float,
        allow_insecure_loopback: bool,
        vault: Vault | None = None,
        clock: Clock = utc_now,
    ) -> None:
        """`vault`: what range replays reveal the events with, as the live consumer does."""
        self._settings = settings
        self._vault = vault
        self._clock = clock
        self._store = store
        self.engine = WebhookEngine(
            deliveries,
            self._target,
            content_type="application/cloudevents+json",
            retry_base_s=retry_base_s,
            max_attempts=domain.MAX_ATTEMPTS,
            timeout_s=timeout_s,
            allow_insecure_loopback=allow_insecure_loopback,
        )
        self._replays: set[asyncio.Task[None]] = set()
        self._endpoint_cache: TtlCache[str, list[Endpoint]] = TtlCache(ENDPOINT_CACHE_S)

    async def close(self) -> None:
        for task in self._replays:
            task.cancel()
        await asyncio.gather(*self._replays, return_exceptions=True)
        await self.engine.close()

    async def _target(self, org: str, endpoint_id: str) -> Target | None:
        endpoint = await self._store.endpoint(org, endpoint_id)
        return None if endpoint is None else Target(endpoint.url, endpoint.secret)

    # --- endpoints -------------------------------------------------------------------------

    async def create_endpoint(
        self,
        principal: Principal,
        url: str,
        event_types: list[str],
        description: str | None,
        idempotency_key: str | None,
    ) -> Endpoint:
        """A new endpoint; with an Idempotency-Key, the one its first try made (its secret too)."""
        now, made_at = self._clock(), partial(self._store.endpoint_made_at, principal.org)
        endpoint = Endpoint(
            id=await id_for_request("", idempotency_key, (principal.org,), made_at, now),
            org=principal.org,
            url=await self.engine.checked_url(url),
            event_types=domain.check_event_types(event_types),
            description=description,
            # Shown to the admin once, at creation.
            secret=f"whsec_{secrets.token_urlsafe(32)}",
            created_by=principal.sub,
            created_at=now,
        )
        if not await self._store.add_endpoint(endpoint):
            return await self.made_endpoint(principal, endpoint.id)
        self._endpoint_cache.forget(principal.org)
        return endpoint

    async def made_endpoint(self, principal: Principal, endpoint_id: str) -> Endpoint:
        """The endpoint a keyed create made, for the answer to its retry (with its secret, which
        the stored answer leaves out)."""
        made = await self._store.endpoint(principal.org, endpoint_id)
        if made is None:
            raise Conflict(f"the endpoint this Idempotency-Key registered ({endpoint_id}) was removed since")
        return made

    async def list_endpoints(self, principal: Principal) -> list[Endpoint]:
        return await self._store.endpoints(principal.org)

    async def get_endpoint(self, principal: Principal, endpoint_id: str) -> Endpoint:
        return found(
            await self._store.endpoint(principal.org, endpoint_id), f"no webhook endpoint {endpoint_id}"
        )

    async def delete_endpoint(self, principal: Principal, endpoint_id: str) -> None:
        if not await self._store.deactivate(principal.org, endpoint_id, self._clock()):
            raise NotFound(f"no webhook endpoint {endpoint_id}")
        await self.engine.cancel(principal.org, endpoint_id)
        self._endpoint_cache.forget(principal.org)

    async def _active_endpoints(self, org: str) -> list[Endpoint]:
        return await self._endpoint_cache.get(org, lambda: self._store.endpoints(org))

    async def deliveries(self, principal: Principal, endpoint_id: str, limit: int) -> list[Delivery]:
        await self.get_endpoint(principal, endpoint_id)
        return await self.engine.deliveries(principal.org, endpoint_id, limit)

    async def redeliver(
        self, principal: Principal, endpoint_id: str, delivery_id: str, idempotency_key: str | None
    ) -> Delivery:
        await self.get_endpoint(principal, endpoint_id)
        return await self.engine.replay(principal.org, endpoint_id, delivery_id, idempotency_key)

    # --- events become deliveries ----------------------------------------------------------

    async def enqueue(self, event: AnyEvent, *, replay_id: str | None = None, only: str | None = None) -> int:
        """A pending delivery per endpoint of the event's organisation that wants its type."""
        if isinstance(event.data, AdvocateErased):
            # What the log holds of the advocate goes, and their name from the endpoints and
            # replays they set up as staff; the erasure notice itself is delivered (and logged:
            # replaying it only tells the receiver again to erase them).
            await self.engine.forget(event.tenant, event.data.advocate_id)
            await self._store.erase_staff(event.tenant, event.data.advocate_id)
        created = 0
        meta: dict[str, Any] = {
            "event_id": event.id,
            "event_type": event.type,
            "event_time": event.time,
            "replay_id": replay_id,
        }
        for endpoint in await self._active_endpoints(event.tenant):
            if event.type not in endpoint.event_types or (only is not None and endpoint.id != only):
                continue
            created += await self.engine.enqueue(
                domain.delivery_id(endpoint.id, event.id, replay_id),
                event.tenant,
                endpoint.id,
                endpoint.url,
                event.to_json_bytes(),
                meta,
                people=subs_in(event.data),
            )
        return created

    async def dispatch_due(self) -> int:
        return await self.engine.dispatch_due()

    # --- range replays ---------------------------------------------------------------------

    async def start_replay(
        self,
        principal: Principal,
        endpoint_id: str,
        since: datetime,
        until: datetime,
        idempotency_key: str | None,
    ) -> Replay:
        """Start delivering the range again; with an Idempotency-Key the replay's id comes from
        it, so a retry whose first answer was lost finds that replay instead of starting another."""
        endpoint = await self.get_endpoint(principal, endpoint_id)
        now, made_at = self._clock(), partial(self._store.replay_made_at, principal.org)
        replay = Replay(
            id=await id_for_request("", idempotency_key, (principal.org, endpoint_id), made_at, now),
            org=principal.org,
            endpoint_id=endpoint_id,
            since=since,
            until=until,
            state="running",
            events=0,
            requested_by=principal.sub,
            requested_at=now,
            progress_at=now,
        )
        started = await self._store.add_replay(replay)
        if started is not replay:
            # The first try's: it runs, or `resume_replays` resumes it once its process stopped.
            return started
        task = outliving_request(self._replay(replay, set(endpoint.event_types)), name=f"replay:{replay.id}")
        self._replays.add(task)
        task.add_done_callback(self._replays.discard)
        return replay

    async def resume_replays(self) -> int:
        """Periodic: run again the replays whose process stopped before they were done (their
        deliveries' ids are the replay's, so what was queued before is not queued twice)."""
        resumed = 0
        for replay in await self._store.stalled_replays(self._clock() - REPLAY_STALLED_AFTER):
            if not await self._store.take_replay(replay, self._clock()):
                continue  # another replica took it
            endpoint = await self._store.endpoint(replay.org, replay.endpoint_id)
            if endpoint is None:
                await self._store.finish_replay(
                    replay.org, replay.id, "failed", replay.events, "endpoint deleted"
                )
                continue
            await self._replay(replay, set(endpoint.event_types))
            resumed += 1
        return resumed

    async def get_replay(self, principal: Principal, endpoint_id: str, replay_id: str) -> Replay:
        return found(
            await self._store.replay(principal.org, endpoint_id, replay_id), f"no replay {replay_id}"
        )

    async def _replay(self, replay: Replay, event_types: set[str]) -> None:
        """Read the range back from Kafka (by record time) and deliver it again."""
        topics = sorted({REGISTRY[t].topic.name for t in event_types})
        count = 0
        try:
            async for batch in TopicRange(
                self._settings.kafka_bootstrap,
                topics,
                since=replay.since,
                until=replay.until,
                security=kafka_security(self._settings),
                vault=self._vault,
            ).batches():
                for item in batch.items:
                    event = item.event
                    if event.tenant == replay.org and event.type in event_types:
                        # One delivery per event, queued now or by this replay's earlier run.
                        await self.enqueue(event, replay_id=replay.id, only=replay.endpoint_id)
                        count += 1
                await self._store.progress_replay(replay.org, replay.id, count, self._clock())
            await self._store.finish_replay(replay.org, replay.id, "done", count, None)
        except Exception as exc:
            log.exception("webhook replay %s failed", replay.id)
            await self._store.finish_replay(replay.org, replay.id, "failed", count, str(exc))
