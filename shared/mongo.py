"""MongoDB through PyMongo's async API, and the single-document patterns Chorus keeps state and
its events consistent with (no multi-document transactions on the hot paths).

- `IndexSpec` lists: each service's store declares its indexes; `ensure_indexes` runs at start.
  TTL indexes (`expireAfterSeconds`) expire data that is only kept for a while.
- `applied_once_filter` / `mark_applied`: an update that also records the event id in the same
  document, so redelivering the event matches nothing and changes nothing.
- `conditional_upsert`: a condition and a change of one document (a cap, say) in one update,
  creating the document if it is missing; it answers whether this call's change was applied.
- Projections updated in batches keep the highest offset applied per topic partition in the
  document they guard (see services/metrics/projections/store.py `ProjectionStore.apply`).
- State and the events it emits: shared/outbox.py. Tenancy (every query names the org):
  shared/tenancy.py.
- `RequestDeadline`: every MongoDB operation of a request shares one deadline, so a store that
  does not answer makes a prompt 503 (shared/errors.py), not a request that hangs. So
  `writes_over_after` a request began, nothing it wrote can still land: work it left half done
  is then another's to finish without racing it.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pymongo
from opentelemetry import context as otel_context
from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.ids import ERASED, KEY_LIFETIME
from shared.settings import ChorusSettings
from shared.tenancy import Cursor, TenancyGuard, TenantCollection

Document = dict[str, Any]

# createIndexes refuses an index that exists under the same name with other options.
INDEX_OPTIONS_CONFLICT = 85
INDEX_KEY_SPECS_CONFLICT = 86

# How many applied event ids a document remembers. Redeliveries come soon after the original
# (a restart or a rebalance), so a bounded window is enough and keeps documents small.
APPLIED_WINDOW = 200

# What the clocks of two replicas may differ by, at the most.
CLOCK_SKEW = timedelta(seconds=5)


def create_client(settings: ChorusSettings, *, service: bool = False) -> AsyncMongoClient[Document]:
    """A client for `settings`. A service's own client (`service=True`) carries the tenancy guard
    when `CHORUS_MONGO_TENANCY_CHECK` is on; a test's or a tool's client looks where it likes."""
    # tz_aware so datetimes come back as UTC-aware, as they went in.
    options: dict[str, Any] = {}
    if settings.mongo_max_pool_size is not None:
        options["maxPoolSize"] = settings.mongo_max_pool_size
    if service and settings.mongo_tenancy_check:
        options["event_listeners"] = [TenancyGuard()]
    return AsyncMongoClient(
        settings.mongo_url,
        tz_aware=True,
        serverSelectionTimeoutMS=5000,
        appname=settings.service_name,
        **options,
    )


class RequestDeadline:
    """ASGI middleware: the MongoDB operations of one HTTP request share a deadline of `seconds`
    from its start (PyMongo's client-side operation timeout). Past it, or when no server can be
    selected in time, the driver raises an error that the error handlers answer with a 503."""

    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with pymongo.timeout(self.seconds):
            await self.app(scope, receive, send)


def writes_over_after(settings: ChorusSettings) -> timedelta:
    """How long after a request began none of its MongoDB writes can land any more, reckoned on
    another replica's clock: every operation ends by the request's deadline (RequestDeadline)."""
    return timedelta(seconds=settings.mongo_request_timeout_s) + CLOCK_SKEW


T = TypeVar("T")


def outliving_request(work: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
    """A task for work that a request starts and that goes on after it (a webhook replay, a
    leaderboard refresh). A task takes a copy of its creator's context, and with it the request's
    MongoDB deadline (RequestDeadline): once the request's seconds were up, every operation of
    the task failed. This one starts from an empty context, carrying only the current trace."""
    context = contextvars.Context()
    context.run(otel_context.attach, otel_context.get_current())
    return asyncio.create_task(work, name=name, context=context)


@dataclass(frozen=True)
class IndexSpec:
    collection: str
    keys: list[tuple[str, int]]
    unique: bool = False
    name: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def model(self) -> IndexModel:
        name = self.name or "_".join(f"{k}_{d}" for k, d in self.keys)
        return IndexModel(self.keys, unique=self.unique, name=name, **self.options)


def pending_index(collection: str, order: str, pending: Document, *, name: str) -> IndexSpec:
    """The index a periodic job reads its work through (`pending`: the filter of the documents
    that have some), in `order`: only those documents are in it, so finding them costs the same
    however large the collection grows."""
    return IndexSpec(collection, [(order, 1)], name=name, options={"partialFilterExpression": pending})


async def ensure_indexes(db: AsyncDatabase[Document], specs: list[IndexSpec]) -> None:
    by_collection: dict[str, list[IndexSpec]] = {}
    for spec in specs:
        by_collection.setdefault(spec.collection, []).append(spec)
    for collection, specs_of_collection in by_collection.items():
        models = [spec.model() for spec in specs_of_collection]
        try:
            await db[collection].create_indexes(models)
        except OperationFailure as exc:
            if exc.code not in (INDEX_OPTIONS_CONFLICT, INDEX_KEY_SPECS_CONFLICT):
                raise
            # An index made without its TTL, or with another one: collMod sets it in place
            # (MongoDB 5.1+), where dropping and building it again would leave a gap.
            await _set_ttls(db, collection, specs_of_collection)
            await db[collection].create_indexes(models)


async def _set_ttls(db: AsyncDatabase[Document], collection: str, specs: list[IndexSpec]) -> None:
    for spec in specs:
        ttl = spec.options.get("expireAfterSeconds")
        if ttl is not None:
            index = {"keyPattern": dict(spec.keys), "expireAfterSeconds": ttl}
            await db.command("collMod", collection, index=index)


def applied_once_filter(event_id: str) -> Document:
    """Add to an update's filter: match only if this event was not applied to the document yet."""
    return {"applied_events": {"$ne": event_id}}


def mark_applied(event_id: str) -> Document:
    """Add to an update (`$push`): remember the event id in a bounded window."""
    return {"applied_events": {"$each": [event_id], "$slice": -APPLIED_WINDOW}}


async def conditional_upsert(
    coll: AsyncCollection[Document] | TenantCollection, query: Document, update: Document
) -> bool:
    """`update_one` with upsert; True if it changed the document or created it.

    `query` is the document's `_id` and a condition on it (`{"_id": day, "count": {"$lt": cap}}`).
    A DuplicateKeyError means a document with that `_id` exists but the condition did not match
    it, or another writer created it a moment ago (MongoDB retries an upsert that collides only
    when its filter is nothing but equalities on the unique key): a plain update then tells.
    The update count says what happened, so no returned document is needed.
    """
    try:
        result = await coll.update_one(query, update, upsert=True)
    except DuplicateKeyError:
        result = await coll.update_one(query, update)
        return bool(result.modified_count)
    return bool(result.modified_count or result.upserted_id is not None)


async def apply_once(
    coll: AsyncCollection[Document] | TenantCollection,
    doc_id: str,
    event_id: str,
    update: Document,
    on_insert: Document | None = None,
    *,
    condition: Document | None = None,
) -> bool:
    """Apply `update` to the document once per event id, creating it with `on_insert` if missing:
    one atomic upsert that also records the event id. True if this call applied it. `condition`
    is a further one on the document (`{"given": {"$lt": cap}}`)."""
    update = {**update, "$push": {**update.get("$push", {}), **mark_applied(event_id)}}
    if on_insert:
        update["$setOnInsert"] = on_insert
    query = {"_id": doc_id, **(condition or {}), **applied_once_filter(event_id)}
    return await conditional_upsert(coll, query, update)


async def was_applied(coll: AsyncCollection[Document] | TenantCollection, doc_id: str, event_id: str) -> bool:
    """Whether the document remembers `event_id` (`mark_applied`): after a conditional update of
    it matched nothing, this tells a retry of one applied before from a refusal."""
    return await coll.find_one({"_id": doc_id, "applied_events": event_id}, {"_id": 1}) is not None


async def created_at(coll: TenantCollection, doc_id: str) -> datetime | None:
    """When the document with this `_id` was made (its `created_at`); None if there is none."""
    doc = await coll.find_one({"_id": doc_id}, {"created_at": 1})
    return None if doc is None else doc["created_at"]


def made_with_key_filter(key: str, now: datetime, *, made_at: str = "created_at") -> Document:
    """The filter of what a create with this Idempotency-Key made within the key's lifetime. A
    create whose id must stay time-ordered (for its list's cursor), and so cannot come from the
    key (shared/ids.py), keeps the key as `request_key` beside its `created_at` (or the field
    `made_at` names) and looks for it first: a retry whose first answer was lost finds it instead
    of making a second."""
    return {"request_key": key, made_at: {"$gte": now - KEY_LIFETIME}}


async def erase_person(
    collection: TenantCollection,
    field: str,
    person: str,
    *,
    also_clear: tuple[str, ...] = (),
    versioned: bool = False,
) -> None:
    """The organisation's documents of `collection` whose `field` names `person` name nobody;
    their fields `also_clear` (text of the person's, such as a create's `request_key`, which may
    name them) become None. `versioned`: the documents carry the `version` their optimistic
    saves check, raised here so that a save that read one before cannot write the person back."""
    update: Document = {"$set": {field: ERASED, **dict.fromkeys(also_clear)}}
    if versioned:
        update["$inc"] = {"version": 1}
    await collection.update_many({field: person}, update)


def joined_id(*parts: str) -> str:
    """A document id made of its natural key's parts (`org|advocate|day`)."""
    return "|".join(parts)


def newest_first_after(after: tuple[Any, str] | None, field: str = "created_at") -> Document:
    """The filter of the page after `after` (its last item's `field` and `_id`) in the order
    `field` descending, `_id` ascending: ties on `field` are broken by `_id`."""
    if after is None:
        return {}
    return {"$or": [{field: {"$lt": after[0]}}, {field: after[0], "_id": {"$gt": after[1]}}]}


def newest_first(
    collection: TenantCollection, filter: Document, after: tuple[Any, str] | None, limit: int
) -> Cursor:
    """The page of what `filter` finds after `after`, newest first (see newest_first_after)."""
    selected = {**filter, **newest_first_after(after)}
    return (
        collection.find(selected)
        .sort([("created_at", pymongo.DESCENDING), ("_id", pymongo.ASCENDING)])
        .limit(limit)
    )


def is_duplicate_key(exc: Exception) -> bool:
    if isinstance(exc, DuplicateKeyError):
        return True
    return isinstance(exc, BulkWriteError) and all(
        e.get("code") == 11000 for e in exc.details.get("writeErrors", [])
    )


async def insert_new(collection: TenantCollection, documents: Sequence[Document]) -> set[Any]:
    """Insert each document whose `_id` is not taken yet, in one unordered write; the `_id`s
    written. A taken `_id` is expected (a redelivery, another replica first, the same `_id`
    twice in `documents`); any other error raises."""
    try:
        await collection.insert_many(documents, ordered=False)
    except BulkWriteError as exc:
        if not is_duplicate_key(exc) or exc.details.get("writeConcernErrors"):
            raise
        # Read by position: an `_id` given twice is written once and refused once.
        refused = {e["index"] for e in exc.details["writeErrors"]}
        return {d["_id"] for i, d in enumerate(documents) if i not in refused}
    return {d["_id"] for d in documents}


async def insert_unless_there(collection: TenantCollection, document: Document) -> Document | None:
    """Insert `document` unless one with its `_id` is there: None when this inserted it, else the
    one there. A create whose id comes from its Idempotency-Key (shared/ids.py `id_for_request`)
    meets its first try's."""
    while True:  # again when the one there went between the insert and the read
        try:
            await collection.insert_one(document)
        except DuplicateKeyError:
            there = await collection.find_one({"_id": document["_id"]})
            if there is not None:
                return there
        else:
            return None
