"""Idempotency keys for creates: the same key and body replay the first response.

The key is claimed with a single insert (unique _id) before the work runs, so two concurrent
requests with one key cannot both create: the second sees 409 while the first is in flight,
and the stored response once it is done. A key reused with another body is a 422.
A request that fails frees its key for a retry, but one that cannot (its process stopped, or
MongoDB was out past the request's deadline, so the freeing failed too) leaves it "running". Such
a key is taken over once its request can no longer write (shared/mongo.py `writes_over_after`,
reckoned from the claim, which the request made after it began): otherwise a client
that retried a 503 with the same key, as it should, got a 409 for the key's 24 hours. As with a
failed request's freed key, the retry runs the create again: if the first one's writes had landed
before it failed, that is a second create, as a retry without a key would make, unless the create
takes its id from the key (shared/ids.py `id_for_request`: a reward, a redemption, kudos, a
personal goal, a webhook endpoint, a webhook replay and a replayed webhook delivery do, and find
and finish the first one's) or keeps the key on what it made and looks for it first
(shared/ids.py `made_before`: a share, a content item, a goal, a survey, a course, a policy
version).
Records are kept 24 hours: a TTL index on their creation time (`INDEXES`, which shared/app.py
ensures for every service) expires them. MongoDB's TTL monitor deletes once a minute, so a record
may outlive its 24 hours by that much; nothing relies on the exact moment.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from pydantic import BaseModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.clock import utc_now
from shared.dependencies import on_loop
from shared.errors import Conflict, InvalidInput
from shared.ids import KEY_LIFETIME
from shared.mongo import Document, IndexSpec, writes_over_after
from shared.tenancy import TenantCollection, Tenants

COLLECTION = "idempotency_keys"
MAX_KEY_LENGTH = 200
REPLAYED_HEADER = "Idempotent-Replayed"
# What the 409 for a key still in flight asks the client to wait, in seconds: a create takes
# well under a second, and a double-click's second request should not wait for more.
IN_FLIGHT_RETRY_AFTER_S = 1

INDEXES: list[IndexSpec] = [
    IndexSpec(
        COLLECTION,
        [("created_at", 1)],
        options={"expireAfterSeconds": int(KEY_LIFETIME.total_seconds())},
    )
]


def fingerprint(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


async def run_once(
    db: AsyncDatabase[Document],
    *,
    org: str,
    scope: str,
    key: str | None,
    body: Any,
    create: Callable[[], Awaitable[dict[str, Any]]],
    abandoned: timedelta,
) -> tuple[dict[str, Any], bool]:
    """Run `create` once per (org, scope, key). Returns (response body, replayed?). A key still
    running `abandoned` after its claim is taken over (see the module's docstring)."""
    if key is None:
        return await create(), False
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidInput.field("Idempotency-Key", f"must be 1 to {MAX_KEY_LENGTH} characters")
    collection = Tenants(db).of(org, COLLECTION)
    doc_id = f"{org}:{scope}:{key}"
    digest = fingerprint(body)
    while not await _claimed(collection, doc_id, digest, abandoned):
        existing = await collection.find_one({"_id": doc_id})
        if existing is None:  # expired between the insert and the read: claim it again
            continue
        if existing["fingerprint"] != digest:
            raise InvalidInput.field(
                "Idempotency-Key", "this key was already used with a different request body"
            )
        if existing["state"] == "done":
            response: dict[str, Any] = existing["response"]
            return response, True
        # The claim says when it lapses, by the deadline of the replica that made it; a record
        # written before claims said so lapses by this replica's.
        if existing.get("abandoned_at", existing["created_at"] + abandoned) > utc_now():
            raise Conflict(
                "a request with this Idempotency-Key is still being processed; retry shortly",
                headers={"Retry-After": str(IN_FLIGHT_RETRY_AFTER_S)},
            )
        # Abandoned: free it and claim it again. Only this claim is deleted, so that of two
        # requests taking it over, one runs and the other sees it running.
        await collection.delete_one({"_id": doc_id, "state": "running", "created_at": existing["created_at"]})
    try:
        response = await create()
    except BaseException:
        await collection.delete_one({"_id": doc_id})  # the key was not used: let the client retry
        raise
    await collection.update_one({"_id": doc_id}, {"$set": {"state": "done", "response": response}})
    return response, False


async def _claimed(collection: TenantCollection, doc_id: str, digest: str, abandoned: timedelta) -> bool:
    """Whether this request claimed the key (a single insert: one claim wins). The claim carries
    when it is abandoned, so that replicas whose deadlines differ (a rollout that changes
    CHORUS_MONGO_REQUEST_TIMEOUT_S) agree on it."""
    now = utc_now()
    claim = {"fingerprint": digest, "state": "running", "created_at": now, "abandoned_at": now + abandoned}
    try:
        await collection.insert_one({"_id": doc_id, **claim})
    except DuplicateKeyError:
        return False
    return True


async def forget_answers_naming(db: AsyncDatabase[Document], org: str, person: str) -> int:
    """Delete the stored answers of `org` that name `person` (an erasure). A request repeated
    with such a key afterwards runs again, and meets whatever duplicate check its create has."""
    collection = Tenants(db).of(org, COLLECTION)
    quoted = json.dumps(person)
    naming = [
        doc["_id"]
        async for doc in collection.find({"state": "done"}, {"response": 1})
        if quoted in json.dumps(doc.get("response"), default=str)
    ]
    if not naming:
        return 0
    return (await collection.delete_many({"_id": {"$in": naming}})).deleted_count


# The header a create takes its key from.
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        description="repeat a create safely: the same key and body replay the first response",
    ),
]


class Once:
    """A route dependency (`once: Idempotent`) that takes the request's Idempotency-Key and runs
    a create once per (org, scope, key) in the service's own database: `await once(org, scope,
    body, create)` answers the response, marked `Idempotent-Replayed: true` when it is the first
    one's again. Without the header the create just runs."""

    def __init__(self, request: Request, response: Response, key: IdempotencyKey = None) -> None:
        self.runtime = request.app.state.runtime
        self.response = response
        self.key = key

    async def __call__(
        self, org: str, scope: str, body: BaseModel | Any, create: Callable[[], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        """`create`'s response, or the first one's again for a repeated key and `body`."""
        if isinstance(body, BaseModel):
            body = body.model_dump(mode="json")
        response, replayed = await run_once(
            self.runtime.db,
            org=org,
            scope=scope,
            key=self.key,
            body=body,
            create=create,
            abandoned=writes_over_after(self.runtime.settings),
        )
        if replayed:
            self.response.headers[REPLAYED_HEADER] = "true"
        return response


Idempotent = Annotated[Once, Depends(on_loop(Once))]
