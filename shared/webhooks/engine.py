"""The delivery queue, its log and replay, in MongoDB; and the dispatcher that sends what is due.

A service enqueues a body for a target (metrics: an endpoint id; recognition: "fulfilment") and
says, through `resolve`, where that target is and what secret signs for it at send time. The
engine signs (signing.py), POSTs, logs every attempt in the delivery's document and retries with
backoff (policy.py) until a 2xx, the last attempt ("failed") or the target is gone ("cancelled").
A delivery that has ended is kept, for its log and replay, for `KEPT_FOR` (a TTL index), then
goes; pending ones stay until they end. Deliveries to different endpoints are sent side by side,
one at a time per endpoint (`dispatch_due`), so a receiver that holds every attempt to its
deadline delays its own deliveries only.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.clock import utc_now
from shared.errors import InvalidInput, NotFound
from shared.ids import id_for_request
from shared.mongo import Document, IndexSpec, insert_unless_there
from shared.tenancy import TenantCollection, Tenants
from shared.webhooks import policy
from shared.webhooks.policy import State
from shared.webhooks.signing import signed_headers

log = logging.getLogger(__name__)

DELIVERIES = "webhook_deliveries"
# How many attempts one dispatcher makes at once, to as many endpoints.
SENDS_AT_ONCE = 16
# While attempts are in flight, how often a dispatch pass looks for newly due deliveries.
LOOK_AGAIN_S = 1.0
# How long an ended delivery (delivered, failed, cancelled) stays in the log and can be replayed.
KEPT_FOR = timedelta(days=30)
# How long a webhook host's name may take to resolve.
LOOK_UP_TIMEOUT_S = 5.0

INDEXES = [
    # The dispatcher's queue: due pending deliveries of every organisation, earliest first.
    IndexSpec(DELIVERIES, [("state", ASCENDING), ("next_attempt_at", ASCENDING)]),
    # The delivery log of a target, newest first.
    IndexSpec(DELIVERIES, [("org", ASCENDING), ("target", ASCENDING), ("created_at", DESCENDING)]),
    # Ended deliveries expire at their `expires_at`; pending ones have none.
    IndexSpec(DELIVERIES, [("expires_at", ASCENDING)], options={"expireAfterSeconds": 0}),
    # The deliveries whose body names a person, for their erasure.
    IndexSpec(DELIVERIES, [("org", ASCENDING), ("people", ASCENDING)]),
]


# Where deliveries go, as the dispatcher tells them apart: (org, target).
Endpoint = tuple[str, str]


@dataclass(frozen=True)
class Target:
    url: str
    secret: str


@dataclass(frozen=True)
class Attempt:
    at: datetime
    status: int | None
    error: str | None
    duration_ms: int


@dataclass(frozen=True)
class Delivery:
    id: str
    org: str
    target: str
    url: str
    body: str
    state: State
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None
    replay_of: str | None = None
    log: tuple[Attempt, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)  # what the caller needs to show it
    # The ids of the people the body names: their erasure takes the delivery out of the log.
    people: tuple[str, ...] = ()


def _delivery(doc: Document) -> Delivery:
    return Delivery(
        id=doc["_id"],
        org=doc["org"],
        target=doc["target"],
        url=doc.get("url", ""),
        body=doc["body"],
        state=State(doc["state"]),
        attempts=int(doc.get("attempts", 0)),
        next_attempt_at=_maybe_utc(doc.get("next_attempt_at")),
        created_at=_utc(doc["created_at"]),
        last_status=doc.get("last_status"),
        last_error=doc.get("last_error"),
        delivered_at=_maybe_utc(doc.get("delivered_at")),
        replay_of=doc.get("replay_of"),
        log=tuple(
            Attempt(_utc(a["at"]), a.get("status"), a.get("error"), int(a["duration_ms"]))
            for a in doc.get("log", [])
        ),
        meta=dict(doc.get("meta", {})),
        people=tuple(doc.get("people", ())),
    )


def _document(delivery: Delivery) -> Document:
    """A new delivery's document (its log starts empty)."""
    return {
        "_id": delivery.id,
        "target": delivery.target,
        "url": delivery.url,
        "body": delivery.body,
        "state": str(delivery.state),
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at,
        "created_at": delivery.created_at,
        "replay_of": delivery.replay_of,
        "log": [],
        "meta": delivery.meta,
        "people": list(delivery.people),
    }


def _utc(at: datetime) -> datetime:
    """Times come back from MongoDB without a zone; they were written in UTC."""
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _maybe_utc(at: datetime | None) -> datetime | None:
    return None if at is None else _utc(at)


class DeliveryStore:
    """The only MongoDB code of the engine. Every query is scoped by organisation but the
    dispatcher's claim, which takes due work across organisations by design."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._tenants = Tenants(db)

    def _of(self, org: str) -> TenantCollection:
        return self._tenants.of(org, DELIVERIES)

    async def add(self, delivery: Delivery) -> bool:
        """False when this delivery already exists (the same event or change seen again)."""
        try:
            await self._of(delivery.org).insert_one(_document(delivery))
        except DuplicateKeyError:
            return False
        return True

    async def add_once(self, delivery: Delivery) -> Delivery:
        """Insert the delivery, or answer the one there with its id (a retry of its request, its
        id from the same Idempotency-Key)."""
        there = await insert_unless_there(self._of(delivery.org), _document(delivery))
        return delivery if there is None else _delivery(there)

    async def made_at(self, org: str, delivery_id: str) -> datetime | None:
        doc = await self._of(org).find_one({"_id": delivery_id}, {"created_at": 1})
        return None if doc is None else _utc(doc["created_at"])

    async def forget(self, org: str, person: str) -> int:
        return (await self._of(org).delete_many({"people": person})).deleted_count

    async def claim_due(
        self, now: datetime, lease_until: datetime, max_attempts: int, busy: Iterable[Endpoint] = ()
    ) -> Delivery | None:
        """Take the earliest due delivery of an endpoint not in `busy` and push its next attempt
        past a lease, counting the attempt, so that two dispatchers (replicas) never both send it.
        One whose attempts are all claimed is not taken again (see fail_abandoned)."""
        deliveries = self._tenants.across(DELIVERIES, why="the dispatcher takes due deliveries of every org")
        due: Document = {
            "state": str(State.PENDING),
            "next_attempt_at": {"$lte": now},
            "attempts": {"$lt": max_attempts},
        }
        if skipped := [{"org": org, "target": target} for org, target in busy]:
            due["$nor"] = skipped
        doc = await deliveries.find_one_and_update(
            due,
            {"$set": {"next_attempt_at": lease_until}, "$inc": {"attempts": 1}},
            sort=[("next_attempt_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else _delivery(doc)

    async def fail_abandoned(self, now: datetime, max_attempts: int) -> int:
        """Fail the due deliveries whose last attempt was claimed but never recorded (its
        dispatcher died, e.g. killed for memory by a receiver's answer): claiming them again and
        again, at every restart, would send them without end."""
        deliveries = self._tenants.across(DELIVERIES, why="the dispatcher ends abandoned deliveries")
        result = await deliveries.update_many(
            {
                "state": str(State.PENDING),
                "next_attempt_at": {"$lte": now},
                "attempts": {"$gte": max_attempts},
            },
            {
                "$set": {
                    "state": str(State.FAILED),
                    "next_attempt_at": None,
                    "last_error": "no outcome recorded: the last attempt's dispatcher stopped",
                    "expires_at": utc_now() + KEPT_FOR,
                }
            },
        )
        return result.modified_count

    async def record(self, claimed: Delivery, attempt: Attempt | None, outcome: policy.Outcome) -> bool:
        """Write the outcome of the attempt `claimed` was claimed for; False, writing nothing,
        when the delivery has moved on since (its lease ran out and another dispatcher claimed
        it, or it ended): a stale dispatcher must not overwrite a newer outcome."""
        fields: Document = {"state": str(outcome.state), "next_attempt_at": outcome.next_attempt_at}
        if outcome.state is not State.PENDING:
            fields["expires_at"] = utc_now() + KEPT_FOR
        update: Document = {"$set": fields}
        if attempt is not None:
            fields |= {
                "last_status": attempt.status,
                "last_error": attempt.error,
                "last_attempt_at": attempt.at,
            }
            if outcome.state is State.DELIVERED:
                fields["delivered_at"] = attempt.at
            update["$push"] = {
                "log": {
                    "at": attempt.at,
                    "status": attempt.status,
                    "error": attempt.error,
                    "duration_ms": attempt.duration_ms,
                }
            }
        claim = {"_id": claimed.id, "state": str(State.PENDING), "attempts": claimed.attempts}
        return (await self._of(claimed.org).update_one(claim, update)).matched_count == 1

    async def get(self, org: str, delivery_id: str) -> Delivery | None:
        doc = await self._of(org).find_one({"_id": delivery_id})
        return None if doc is None else _delivery(doc)

    async def list(self, org: str, target: str, limit: int) -> list[Delivery]:
        cursor = self._of(org).find({"target": target})
        return [_delivery(d) async for d in cursor.sort("created_at", DESCENDING).limit(limit)]

    async def cancel_pending(self, org: str, target: str) -> None:
        await self._of(org).update_many(
            {"target": target, "state": str(State.PENDING)},
            {
                "$set": {
                    "state": str(State.CANCELLED),
                    "next_attempt_at": None,
                    "expires_at": utc_now() + KEPT_FOR,
                }
            },
        )


Resolve = Callable[[str, str], Awaitable[Target | None]]  # (org, target) -> where and how to send
LookUp = Callable[[str, int], Awaitable[list[str]]]  # (host, port) -> its addresses


async def look_up(host: str, port: int) -> list[str]:
    """The addresses a host name resolves to (the system resolver, off the event loop)."""
    found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


@dataclass(frozen=True)
class Destination:
    """Where one attempt connects: the URL with its host replaced by the checked address, and
    the name the receiver knows itself by (Host header, TLS server name and certificate check)."""

    url: httpx.URL
    host: str  # for TLS: the server name and the certificate's
    host_header: str  # the host and, when not the scheme's default, the port


class WebhookEngine:
    def __init__(
        self,
        store: DeliveryStore,
        resolve: Resolve,
        *,
        content_type: str,
        retry_base_s: float,
        max_attempts: int,
        timeout_s: float,
        allow_insecure_loopback: bool = False,
        look_up: LookUp = look_up,
    ) -> None:
        self._store = store
        self._allow_insecure_loopback = allow_insecure_loopback
        self._look_up = look_up
        self._resolve = resolve
        self._content_type = content_type
        self._retry_base_s = retry_base_s
        self._max_attempts = max_attempts
        self._timeout_s = timeout_s
        self._http = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)

    async def close(self) -> None:
        await self._http.aclose()

    async def checked_url(self, url: str) -> str:
        """`url` if a webhook may be sent there: https (http to loopback in development), no
        credentials, and a host that resolves to public addresses only. Else InvalidInput. A
        name that does not resolve yet is accepted: each attempt checks it again."""
        url = policy.check_url(url, allow_insecure_loopback=self._allow_insecure_loopback)
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:  # a port out of range, a control character...
            raise InvalidInput.field("url", str(exc)) from None
        if addresses := await self._addresses(parsed):
            policy.checked_address(addresses, allow_insecure_loopback=self._allow_insecure_loopback)
        return url

    async def _addresses(self, url: httpx.URL) -> list[str]:
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            return await asyncio.wait_for(self._look_up(url.host, port), LOOK_UP_TIMEOUT_S)
        except (OSError, TimeoutError):  # socket.gaierror: the name does not resolve
            return []

    async def _destination(self, url: str) -> Destination:
        parsed = httpx.URL(url)
        addresses = await self._addresses(parsed)
        address = policy.checked_address(addresses, allow_insecure_loopback=self._allow_insecure_loopback)
        return Destination(parsed.copy_with(host=address), parsed.host, parsed.netloc.decode("ascii"))

    async def enqueue(
        self,
        delivery_id: str,
        org: str,
        target: str,
        url: str,
        body: bytes,
        meta: dict[str, Any] | None = None,
        people: Iterable[str] = (),
    ) -> bool:
        """Queue a body for sending now; False when `delivery_id` was queued before. `people`: the
        ids of the people the body names (see `forget`)."""
        at = utc_now()
        return await self._store.add(
            Delivery(
                id=delivery_id,
                org=org,
                target=target,
                url=url,
                body=body.decode(),
                state=State.PENDING,
                attempts=0,
                next_attempt_at=at,
                created_at=at,
                meta=meta or {},
                people=tuple(sorted(people)),
            )
        )

    async def forget(self, org: str, person: str) -> int:
        """An erased person's deliveries leave the log (sent or not), so that no replay of one
        sends their data again."""
        return await self._store.forget(org, person)

    async def deliveries(self, org: str, target: str, limit: int) -> list[Delivery]:
        return await self._store.list(org, target, limit)

    async def cancel(self, org: str, target: str) -> None:
        await self._store.cancel_pending(org, target)

    async def replay(self, org: str, target: str, delivery_id: str, idempotency_key: str | None) -> Delivery:
        """Send a logged delivery again, as a new delivery with its own id and log (receivers
        that dedupe on the delivery id must see it) and the same body. With an Idempotency-Key
        the new delivery's id comes from it, so a retry whose first answer was lost finds the
        delivery its first try queued instead of queueing the body once more."""
        original = await self._store.get(org, delivery_id)
        if original is None or original.target != target:
            raise NotFound(f"no delivery {delivery_id}")
        at, made_at = utc_now(), partial(self._store.made_at, org)
        replayed = Delivery(
            id=await id_for_request(
                policy.replay_prefix(original.id), idempotency_key, (org, target), made_at, at
            ),
            org=org,
            target=target,
            url=original.url,
            body=original.body,
            state=State.PENDING,
            attempts=0,
            next_attempt_at=at,
            created_at=at,
            replay_of=original.id,
            meta=original.meta,
            people=original.people,
        )
        return await self._store.add_once(replayed)

    async def dispatch_due(self) -> int:
        """Send what is due (a Periodic calls this); returns how many were delivered.

        Up to SENDS_AT_ONCE attempts at once, to as many endpoints: an endpoint's deliveries go
        one at a time, the earliest due first, and are not claimed while it has one in flight.
        The pass claims again as each attempt ends, and every LOOK_AGAIN_S while any is in
        flight, so a receiver that holds its attempt to the deadline holds up only its own
        endpoint; it ends when nothing is in flight and nothing is due."""
        delivered = 0
        sending: dict[Endpoint, asyncio.Task[State]] = {}
        look_for_abandoned_at = time.monotonic()
        async with asyncio.TaskGroup() as attempts:
            while True:
                if time.monotonic() >= look_for_abandoned_at:
                    await self._store.fail_abandoned(utc_now(), self._max_attempts)
                    look_for_abandoned_at = time.monotonic() + LOOK_AGAIN_S
                while len(sending) < SENDS_AT_ONCE:
                    at = utc_now()
                    # The lease outlasts one attempt, so a crashed dispatcher's claim comes back.
                    lease_until = at + timedelta(seconds=self._timeout_s * 3)
                    delivery = await self._store.claim_due(at, lease_until, self._max_attempts, sending)
                    if delivery is None:
                        break
                    endpoint = (delivery.org, delivery.target)
                    sending[endpoint] = attempts.create_task(self._send_alone(delivery))
                if not sending:
                    return delivered
                ended, _ = await asyncio.wait(
                    sending.values(), timeout=LOOK_AGAIN_S, return_when=asyncio.FIRST_COMPLETED
                )
                for endpoint, attempt in list(sending.items()):
                    if attempt in ended:
                        del sending[endpoint]
                        delivered += attempt.result() is State.DELIVERED

    async def _send_alone(self, delivery: Delivery) -> State:
        """`_send`, whose failure (its target's look-up, the outcome's write) ends this attempt
        only, not the others in flight: its claim runs out and the delivery is tried again."""
        try:
            return await self._send(delivery)
        except Exception:
            log.exception("webhook delivery %s: attempt %s failed", delivery.id, delivery.attempts)
            return State.PENDING

    async def _send(self, delivery: Delivery) -> State:
        target = await self._resolve(delivery.org, delivery.target)
        if target is None:
            await self._store.record(delivery, None, policy.Outcome(State.CANCELLED, None))
            return State.CANCELLED
        body = delivery.body.encode()
        headers = {
            "Content-Type": self._content_type,
            "User-Agent": "Chorus-Webhooks/1",
            **signed_headers(target.secret, int(time.time()), body, delivery.id),
        }
        status: int | None = None
        error: str | None = None
        started = time.monotonic()
        try:
            # The client's timeout bounds each read, not the attempt: a receiver trickling its
            # answer would hold its endpoint's deliveries, and a slot of the dispatcher, for ever.
            async with asyncio.timeout(self._timeout_s):
                destination = await self._destination(target.url)
                async with self._http.stream(
                    "POST",
                    destination.url,
                    content=body,
                    headers={**headers, "Host": destination.host_header},
                    extensions={"sni_hostname": destination.host},
                ) as response:
                    # Only the status is kept (it says what went wrong): the body, of any size,
                    # is never read, and closing the response drops its connection.
                    status = response.status_code
        except TimeoutError:
            error = f"timed out: no answer within {self._timeout_s:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        except InvalidInput as exc:  # the host now resolves somewhere it may not go
            error = f"refused: {exc.errors[0]['message'] if exc.errors else exc}"
        at = utc_now()
        attempt = Attempt(at, status, error, int((time.monotonic() - started) * 1000))
        outcome = policy.after_attempt(
            delivery.attempts,
            status,
            at,
            max_attempts=self._max_attempts,
            retry_base_s=self._retry_base_s,
            rand=random.random(),
        )
        if not await self._store.record(delivery, attempt, outcome):
            log.warning("webhook delivery %s moved on during attempt %s", delivery.id, delivery.attempts)
            return State.PENDING
        if outcome.state is State.FAILED:
            log.warning("webhook delivery %s gave up after %s attempts", delivery.id, delivery.attempts)
        return outcome.state
