"""Tenancy in one place: every store query goes through a collection bound to one organisation.

- `Tenants(db)` is what a store holds; `tenants.of(org, "shares")` is a `TenantCollection`: the
  collection as that organisation sees it. Every filter it is given gets `org` added (a filter
  naming another organisation is a bug and raises), every document it inserts gets `org` set,
  and every aggregation starts with a `$match` on it. A store therefore cannot forget the org.
- A few queries rightly span organisations: the outbox relay, a redirect looking a share up by
  its code, the sweep of due scheduled shares. They go through
  `tenants.across(collection, why=...)`, which tags each command with `comment="cross-tenant:
  <why>"`: visible in MongoDB's logs and profiler, and the one thing the guard lets through.
- `TenancyGuard` (on when `CHORUS_MONGO_TENANCY_CHECK` is true: the tests, and a staging that
  wants it) watches every command the service's client sends and logs an error for a read,
  update or delete whose filter has no `org` and no cross-tenant comment. The tests fail on any.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.command_cursor import AsyncCommandCursor
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.monitoring import CommandFailedEvent, CommandListener, CommandStartedEvent, CommandSucceededEvent
from pymongo.results import DeleteResult, InsertManyResult, InsertOneResult, UpdateResult

Document = dict[str, Any]
Filter = Mapping[str, Any]
Cursor = AsyncCursor[Document]
Aggregation = AsyncCommandCursor[Document]

CROSS_TENANT = "cross-tenant: "

log = logging.getLogger("chorus.tenancy")


def scoped(filter: Filter | None, org: str) -> Document:
    """`filter` restricted to `org`. A filter that names another organisation is a bug."""
    query = dict(filter or {})
    named = query.get("org", org)
    if named != org:
        raise ValueError(f"a query of organisation {org!r} names organisation {named!r}")
    query["org"] = org
    return query


class TenantCollection:
    """One collection as one organisation sees it. The methods are PyMongo's, with the org added."""

    def __init__(self, collection: AsyncCollection[Document], org: str) -> None:
        if not org:
            raise ValueError("a tenant collection needs an organisation")
        self.raw = collection
        self.org = org

    @property
    def name(self) -> str:
        return self.raw.name

    def find(self, filter: Filter | None = None, *args: Any, **kwargs: Any) -> Cursor:
        return self.raw.find(scoped(filter, self.org), *args, **kwargs)

    async def find_one(self, filter: Filter | None = None, *args: Any, **kwargs: Any) -> Document | None:
        return await self.raw.find_one(scoped(filter, self.org), *args, **kwargs)

    async def count_documents(self, filter: Filter | None = None, **kwargs: Any) -> int:
        return await self.raw.count_documents(scoped(filter, self.org), **kwargs)

    async def distinct(self, key: str, filter: Filter | None = None, **kwargs: Any) -> list[Any]:
        return await self.raw.distinct(key, scoped(filter, self.org), **kwargs)

    async def aggregate(
        self, pipeline: Sequence[Mapping[str, Any]], **kwargs: Any
    ) -> AsyncCommandCursor[Document]:
        return await self.raw.aggregate([{"$match": {"org": self.org}}, *pipeline], **kwargs)

    async def insert_one(self, document: Mapping[str, Any], **kwargs: Any) -> InsertOneResult:
        return await self.raw.insert_one(scoped(document, self.org), **kwargs)

    async def insert_many(self, documents: Sequence[Mapping[str, Any]], **kwargs: Any) -> InsertManyResult:
        return await self.raw.insert_many([scoped(d, self.org) for d in documents], **kwargs)

    async def update_one(self, filter: Filter, update: Any, **kwargs: Any) -> UpdateResult:
        # An upsert copies the filter's equalities into the new document, so it gets the org.
        return await self.raw.update_one(scoped(filter, self.org), update, **kwargs)

    async def update_many(self, filter: Filter, update: Any, **kwargs: Any) -> UpdateResult:
        return await self.raw.update_many(scoped(filter, self.org), update, **kwargs)

    async def replace_one(self, filter: Filter, replacement: Filter, **kwargs: Any) -> UpdateResult:
        return await self.raw.replace_one(scoped(filter, self.org), scoped(replacement, self.org), **kwargs)

    async def find_one_and_update(self, filter: Filter, update: Any, **kwargs: Any) -> Document | None:
        return await self.raw.find_one_and_update(scoped(filter, self.org), update, **kwargs)

    async def find_one_and_delete(self, filter: Filter, **kwargs: Any) -> Document | None:
        return await self.raw.find_one_and_delete(scoped(filter, self.org), **kwargs)

    async def delete_one(self, filter: Filter, **kwargs: Any) -> DeleteResult:
        return await self.raw.delete_one(scoped(filter, self.org), **kwargs)

    async def delete_many(self, filter: Filter, **kwargs: Any) -> DeleteResult:
        return await self.raw.delete_many(scoped(filter, self.org), **kwargs)


class CrossTenantCollection:
    """A collection for the few queries that span organisations; each command says why."""

    def __init__(self, collection: AsyncCollection[Document], why: str) -> None:
        self.raw = collection
        self.comment = CROSS_TENANT + why

    @property
    def name(self) -> str:
        return self.raw.name

    def find(self, filter: Filter | None = None, *args: Any, **kwargs: Any) -> Cursor:
        return self.raw.find(filter, *args, comment=self.comment, **kwargs)

    async def find_one(self, filter: Filter | None = None, *args: Any, **kwargs: Any) -> Document | None:
        return await self.raw.find_one(filter, *args, comment=self.comment, **kwargs)

    async def count_documents(self, filter: Filter, **kwargs: Any) -> int:
        return await self.raw.count_documents(filter, comment=self.comment, **kwargs)

    async def aggregate(
        self, pipeline: Sequence[Mapping[str, Any]], **kwargs: Any
    ) -> AsyncCommandCursor[Document]:
        return await self.raw.aggregate(list(pipeline), comment=self.comment, **kwargs)

    async def update_one(self, filter: Filter, update: Any, **kwargs: Any) -> UpdateResult:
        return await self.raw.update_one(filter, update, comment=self.comment, **kwargs)

    async def update_many(self, filter: Filter, update: Any, **kwargs: Any) -> UpdateResult:
        return await self.raw.update_many(filter, update, comment=self.comment, **kwargs)

    async def find_one_and_update(self, filter: Filter, update: Any, **kwargs: Any) -> Document | None:
        return await self.raw.find_one_and_update(filter, update, comment=self.comment, **kwargs)

    async def delete_many(self, filter: Filter, **kwargs: Any) -> DeleteResult:
        return await self.raw.delete_many(filter, comment=self.comment, **kwargs)


class Tenants:
    """A service database's collections, handed out per organisation (or, with a reason, across)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db

    def of(self, org: str, collection: str) -> TenantCollection:
        return TenantCollection(self.db[collection], org)

    def across(self, collection: str, *, why: str) -> CrossTenantCollection:
        return CrossTenantCollection(self.db[collection], why)


# --- the guard ----------------------------------------------------------------------------------

# Commands that select documents, and where their filters are.
_FILTERS: dict[str, Callable[[Filter], list[Filter]]] = {
    "find": lambda c: [c.get("filter") or {}],
    "count": lambda c: [c.get("query") or {}],
    "distinct": lambda c: [c.get("query") or {}],
    "findAndModify": lambda c: [c.get("query") or {}],
    "update": lambda c: [u.get("q") or {} for u in c.get("updates") or ()],
    "delete": lambda c: [d.get("q") or {} for d in c.get("deletes") or ()],
    "aggregate": lambda c: [_first_match(c.get("pipeline") or ())],
}


def _first_match(pipeline: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    first = pipeline[0] if pipeline else {}
    return first.get("$match") or {}


def _names_org(query: Mapping[str, Any]) -> bool:
    if "org" in query:
        return True
    # {"$and": [{"org": ...}, ...]} names it too.
    return any(_names_org(part) for part in query.get("$and") or ())


@dataclass(frozen=True)
class Unscoped:
    database: str
    collection: str
    command: str
    filter_keys: tuple[str, ...]


class TenancyGuard(CommandListener):
    """Logs (and keeps, for the tests) every command that selects documents without the org."""

    # Every guard of the process adds here; the tests read and clear it.
    seen: list[Unscoped] = []
    _lock = threading.Lock()

    def started(self, event: CommandStartedEvent) -> None:
        filters_of = _FILTERS.get(event.command_name)
        if filters_of is None:
            return
        command = event.command
        comment = command.get("comment")
        if isinstance(comment, str) and comment.startswith(CROSS_TENANT):
            return
        collection = str(command.get(event.command_name))
        if collection.startswith("system."):
            return
        for query in filters_of(command):
            if not _names_org(query):
                found = Unscoped(event.database_name, collection, event.command_name, tuple(sorted(query)))
                log.error("query without its organisation: %s", found)
                with self._lock:
                    TenancyGuard.seen.append(found)
                return

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass
