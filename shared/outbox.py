"""The outbox: a state change and the events it emits, in one single-document write.

No request waits on Kafka, and no event is lost or sent without its state. A write that must
emit events stores them, as pending records, in an `outbox` array of the very document it changes,
in the same update (`with_outbox` for an insert, `queue` for an update); `outbox_since` says when
the oldest of them was written and is set only while some are pending, so a sparse index on it
(`outbox_index`, declared by every collection that carries an outbox) lists exactly the
documents the relay has work in. The writer then nudges the relay and returns.

The relay (one `Outbox` per service, run by shared/app.py as a periodic job that a nudge wakes
early) reads the pending documents of every outbox collection of its service in `outbox_since`
order, publishes their events in the order they were written, and pulls what it sent:

- Order per key: the events of one document leave in the order they were queued; events of one
  key kept in several documents or collections leave in the order of their write times (the
  relay merges the documents' queues by time, and publishes nothing written after the first
  document it did not read). The write times are the writers' clocks.
- At least once, with stable ids: an event keeps the id it was written with, so a record sent
  again (a crash before it was pulled, two replicas' relays) is one event to consumers, who
  dedupe by id.
- Trace: each record keeps the trace context it was written in (or the one the writer chose,
  e.g. the click a conversion names) and is published as its child, with an optional link.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from shared.clock import utc_now
from shared.events import decode
from shared.events.envelope import AnyEvent
from shared.messaging import EventProducer
from shared.messaging.producer import Outgoing
from shared.messaging.tracing import extract, inject_current, links_to
from shared.migrations import Migration
from shared.mongo import Document, IndexSpec
from shared.tenancy import Tenants

OUTBOX = "outbox"
OUTBOX_SINCE = "outbox_since"
# Documents read per collection in one pass of the relay.
PAGE = 200
# Passes in one run of the relay; the next run (or nudge) goes on from there.
MAX_PASSES = 50


def outbox_index(collection: str) -> IndexSpec:
    """The relay's list of `collection`: only documents with pending events are in it."""
    return IndexSpec(collection, [(OUTBOX_SINCE, ASCENDING)], name="outbox_pending", options={"sparse": True})


_last_written = datetime.min.replace(tzinfo=UTC)


def written_now() -> datetime:
    """Now, at the millisecond precision MongoDB keeps, and later than any time this process gave
    before: two events one process writes within a millisecond still read back in their order."""
    global _last_written
    at = max(utc_now(), _last_written + timedelta(milliseconds=1))
    _last_written = at
    return at


def pending(
    event: AnyEvent,
    *,
    trace: dict[str, str] | None = None,
    link: dict[str, str] | None = None,
    at: datetime | None = None,
) -> Document:
    """The record of an event to send: its id, when it was written, the CloudEvent itself, the
    trace context it continues (by default the writer's current one) and one to link to."""
    return {
        "id": event.id,
        "at": at or written_now(),
        "event": event.to_json_bytes().decode(),
        "trace": inject_current() if trace is None else trace,
        "link": link or {},
    }


def with_outbox(doc: Document, records: Sequence[Document]) -> Document:
    """A new document, with its events pending."""
    if not records:
        return doc
    return {**doc, OUTBOX: list(records), OUTBOX_SINCE: min(r["at"] for r in records)}


def queue(update: Document, records: Sequence[Document]) -> Document:
    """`update` (an update document) that also queues `records`, in the same write."""
    if records:
        update.setdefault("$push", {})[OUTBOX] = {"$each": list(records)}
        update.setdefault("$min", {})[OUTBOX_SINCE] = min(r["at"] for r in records)
    return update


PENDING_FILTER: Document = {OUTBOX_SINCE: {"$exists": True}}


@dataclass(frozen=True)
class Page:
    """Pending documents of one collection, in `outbox_since` order, as the relay read them."""

    collection: str
    docs: list[Document]
    # Whether the page holds every pending document of the collection (it read fewer than asked).
    complete: bool


@dataclass(frozen=True)
class Due:
    """One event to send now, and the document whose outbox holds it."""

    collection: str
    doc_id: Any
    org: str
    record: Document


def due(pages: Sequence[Page]) -> list[Due]:
    """The events to send in this pass, in the order to send them.

    Each document's queue is kept in its order, and the queues are merged by write time. A
    collection with more pending documents than its page held may hold events written from its
    page's last `outbox_since` on (`outbox_since` is never later than a document's oldest pending
    event), so nothing written from then on leaves in this pass; should that leave nothing (a
    page of documents that all became pending in one millisecond), the first document's queue
    leaves alone, so that the relay always moves on.
    """
    horizon = min((p.docs[-1][OUTBOX_SINCE] for p in pages if not p.complete and p.docs), default=None)
    queues = [
        [Due(p.collection, doc["_id"], doc["org"], record) for record in doc.get(OUTBOX) or ()]
        for p in pages
        for doc in p.docs
    ]
    merged = heapq.merge(*queues, key=lambda d: d.record["at"])
    if horizon is None:
        return list(merged)
    taken = list(itertools.takewhile(lambda d: d.record["at"] < horizon, merged))
    if taken:
        return taken
    earliest = min((q for q in queues if q), key=lambda q: q[0].record["at"], default=[])
    return list(earliest)


def outgoing(item: Due) -> Outgoing:
    record = item.record
    return Outgoing(
        decode(record["event"].encode()), extract(record.get("trace")), links_to(record.get("link"))
    )


def sent_by_document(items: Iterable[Due]) -> dict[tuple[str, Any, str], list[str]]:
    """The ids sent, per (collection, document id, organisation)."""
    sent: dict[tuple[str, Any, str], list[str]] = {}
    for item in items:
        sent.setdefault((item.collection, item.doc_id, item.org), []).append(item.record["id"])
    return sent


class Outbox:
    """The relay of one service: publishes what its outbox collections hold, then pulls it."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        collections: Sequence[str],
        producer: EventProducer,
        *,
        page: int = PAGE,
    ) -> None:
        self._tenants = Tenants(db)
        self.collections = tuple(collections)
        self._producer = producer
        self._page = page
        # Set by a writer that queued events: the relay's job runs now rather than at its interval.
        self.wakeup = asyncio.Event()
        self.published = 0  # events sent (for tests and progress reporting)

    def nudge(self) -> None:
        """Tell the relay there is something to send. Never waits."""
        self.wakeup.set()

    async def _read(self, collection: str) -> Page:
        pending = self._tenants.across(collection, why="the outbox relay reads every org's pending events")
        cursor = (
            pending.find(PENDING_FILTER, {"org": 1, OUTBOX: 1, OUTBOX_SINCE: 1})
            .sort(OUTBOX_SINCE, ASCENDING)
            .limit(self._page)
        )
        docs = await cursor.to_list()
        return Page(collection, docs, complete=len(docs) < self._page)

    async def relay(self) -> int:
        """Send what is pending, pass after pass until none is left; the number of events sent.
        A failure to publish ends the run: what was not pulled is sent again by the next."""
        sent = 0
        if not self._producer.started:
            return sent  # not connected to Kafka yet (started during an outage): the events wait
        for _ in range(MAX_PASSES):
            pages = [await self._read(c) for c in self.collections]
            await self._tidy(pages)
            items = due(pages)
            if not items:
                break
            await self._producer.publish_each([outgoing(item) for item in items])
            for (collection, doc_id, org), ids in sent_by_document(items).items():
                await self._pull(collection, doc_id, org, ids)
            sent += len(items)
            self.published += len(items)
        return sent

    async def _pull(self, collection: str, doc_id: Any, org: str, ids: list[str]) -> None:
        coll = self._tenants.of(org, collection)
        await coll.update_one({"_id": doc_id}, {"$pull": {OUTBOX: {"id": {"$in": ids}}}})
        # Off the relay's list once empty; a write that queued more meanwhile keeps it on.
        await coll.update_one({"_id": doc_id, OUTBOX: {"$size": 0}}, {"$unset": {OUTBOX_SINCE: ""}})

    async def _tidy(self, pages: Sequence[Page]) -> None:
        """Take documents with nothing pending off the list (a relay stopped between its two
        updates leaves one so)."""
        for p in pages:
            for doc in p.docs:
                if not doc.get(OUTBOX):
                    await self._pull(p.collection, doc["_id"], doc["org"], [])


def adopt_serialised_outbox(collection: str, flag: str = "outbox_pending") -> Migration:
    """A migration for documents whose outbox predates this module: a list of serialised
    CloudEvents marked by `flag` (content's first outbox). Each becomes a record the relay sends,
    in the list's order; the flag goes. A document adopted no longer has the flag."""

    async def run(db: AsyncDatabase[Document]) -> int:
        tenants = Tenants(db)
        why = f"adopting every org's {collection} outbox of an earlier shape"
        adopted = 0
        async for doc in tenants.across(collection, why=why).find(
            {flag: {"$exists": True}}, {"org": 1, OUTBOX: 1}
        ):
            serialised = [raw for raw in doc.get(OUTBOX) or () if isinstance(raw, str)]
            records = [pending(decode(raw.encode()), trace={}) for raw in serialised]
            change: Document = {"$unset": {flag: ""}}
            if records:
                change["$set"] = {OUTBOX: records, OUTBOX_SINCE: records[0]["at"]}
            documents = tenants.of(doc["org"], collection)
            await documents.update_one({"_id": doc["_id"], flag: {"$exists": True}}, change)
            adopted += 1
        return adopted

    return Migration(f"adopt-serialised-outbox-{collection}", run)
