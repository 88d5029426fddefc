"""The only MongoDB code of the projections: the counters, the click index and the advocates'
activity, all built from events.

Projection counters live in a generation of the `stats_<n>` collection named by the
`projection_meta` document, so a rebuild can fill a fresh generation and swap it in with one
write.

A stats document holds counters of one organisation and one day, for one part: the day's totals
(part "all") or the breakdowns by advocate, content, team, network and tag (part "dims"):
`{org, day, part, wm: {<topic_partition>: offset}, counts: {<dim>: {<encoded value>: {clicks: 3,
...}}}}`. A poll's batch (every partition fetched) makes two atomic updates per organisation and
day it touches, guarded by the offset watermarks kept in the document: not one per dimension
value or per partition, so the writes per click fall as the load grows (bench/pipeline). The
totals, read most, stay small.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.metrics.projections.copies import EventKey, Record
from services.metrics.projections.domain import (
    ALL,
    AdvocateActivity,
    Click,
    DayTally,
    StatsRow,
    fold,
    stats_doc_id,
    stats_part,
)
from shared.clock import utc_now
from shared.documents import Documents
from shared.ids import ERASED
from shared.mongo import APPLIED_WINDOW, Document, IndexSpec, insert_new
from shared.tenancy import CrossTenantCollection, Tenants
from shared.ttl_cache import TtlCache

META = "projection_meta"
STATS_PREFIX = "stats_g"
FIRST_GENERATION = f"{STATS_PREFIX}0"
CLICK_INDEX = "click_index"
ADVOCATES = "advocates"
ERASED_ADVOCATES = "erased_advocates"
# Per event of an outboxed topic, the record that first counted for it (copies.py). Kept as long
# as the topics keep their events: a replay or rebuild meets every copy again.
FIRST_COPIES = "first_copies"
UPDATE_ATTEMPTS = 8
# How long a projector may keep using the active generation it read (a rebuild waits twice that).
STATS_CACHE_S = 1.0
# How often a live projector held by a rebuild's handover looks whether the handover is over.
HELD_POLL_S = 0.25


def encode_key(key: str) -> str:
    """A dimension value as a field name, safe in an update or projection path.

    Paths split on dots and a leading `$` reads as an operator, so a tag "v1.2" or a value "$x"
    cannot be a path segment as it is. MongoDB 5+ can store such names, but only aggregation
    ($getField, $setField) reaches them, not `$inc` or a projection. And no field name may hold a
    NUL (BSON writes names NUL-terminated): a team or tag with one made the projector's update
    invalid, and the event was dead-lettered. So: percent-encoding of '%', '.', '$' and NUL,
    behind a 'k' so that no name is empty."""
    return "k" + key.replace("%", "%25").replace(".", "%2E").replace("$", "%24").replace("\0", "%00")


def decode_key(name: str) -> str:
    return name[1:].replace("%00", "\0").replace("%24", "$").replace("%2E", ".").replace("%25", "%")


def stats_indexes(collection: str) -> list[IndexSpec]:
    return [IndexSpec(collection, [("org", ASCENDING), ("part", ASCENDING), ("day", ASCENDING)])]


INDEXES: list[IndexSpec] = [
    *stats_indexes(FIRST_GENERATION),
    IndexSpec(CLICK_INDEX, [("org", ASCENDING), ("visitor_hash", ASCENDING), ("clicked_at", ASCENDING)]),
    IndexSpec(CLICK_INDEX, [("org", ASCENDING), ("advocate_id", ASCENDING)]),
    IndexSpec(ADVOCATES, [("org", ASCENDING), ("enrolled", ASCENDING)]),
    # An erased advocate's id is kept only while events can still name them (see mark_erased).
    IndexSpec(ERASED_ADVOCATES, [("forget_at", ASCENDING)], options={"expireAfterSeconds": 0}),
]


CLICKS = Documents(
    Click,
    id_field="click_id",
    stored_as={"self_click": "self"},
    older={"tags": [], "bot": False, "self_click": False},
)


def _advocate_id(org: str, advocate_id: str) -> str:
    return f"{org}|{advocate_id}"


@dataclass(frozen=True)
class StatsMeta:
    active: str  # the generation read and written
    held_until: datetime | None  # a rebuild's handover: the live projector writes none until then


class ProjectionStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tenants = Tenants(db)
        self._active: TtlCache[str, StatsMeta] = TtlCache(STATS_CACHE_S)

    # --- projection generations ------------------------------------------------------------

    def _meta(self) -> CrossTenantCollection:
        return self.tenants.across(META, why="the active stats generation is one for every organisation")

    async def _stats_meta(self, *, fresh: bool = False) -> StatsMeta:
        if fresh:
            self._active.forget("stats")
        return await self._active.get("stats", self._read_stats_meta)

    async def _read_stats_meta(self) -> StatsMeta:
        doc = await self._meta().find_one({"_id": "stats"}) or {}
        return StatsMeta(str(doc.get("active", FIRST_GENERATION)), doc.get("held_until"))

    async def active_stats(self, *, fresh: bool = False) -> str:
        """The generation to read (and for the rebuild and erasures, to write)."""
        return (await self._stats_meta(fresh=fresh)).active

    async def live_stats(self) -> str:
        """The generation the live projector writes: the active one, once no rebuild holds it.

        While a rebuild hands over (`hold_stats`) the live projector waits: the rebuild then
        replays everything the projector has applied so far into the new generation, swaps it
        in, and the projector goes on there. A hold that outlives its time (the rebuild died) is
        over by itself."""
        meta = await self._stats_meta()
        while meta.held_until is not None and utc_now() < meta.held_until:
            await asyncio.sleep(HELD_POLL_S)
            meta = await self._stats_meta(fresh=True)
        return meta.active

    async def hold_stats(self, until: datetime | None) -> None:
        """Make the live projector wait until `until` or the swap (None: no longer)."""
        change = {"$set": {"held_until": until}} if until else {"$unset": {"held_until": ""}}
        await self._meta().update_one({"_id": "stats"}, change, upsert=True)

    async def next_generation(self) -> str:
        """A fresh, empty stats collection name (one higher than any generation so far)."""
        # Naming and dropping collections: no documents are read, so no organisation applies.
        names = await self.tenants.db.list_collection_names()
        numbers = [
            int(n[len(STATS_PREFIX) :])
            for n in names
            if n.startswith(STATS_PREFIX) and n[len(STATS_PREFIX) :].isdigit()
        ]
        name = f"{STATS_PREFIX}{max([0, *numbers]) + 1}"
        await self.tenants.db.drop_collection(name)
        return name

    async def swap_stats(self, new: str) -> str:
        """Point readers and projectors at `new`, and end a hold; return the generation it replaced."""
        old = await self._meta().find_one_and_update(
            {"_id": "stats"},
            {"$set": {"active": new}, "$unset": {"held_until": ""}},
            upsert=True,
            return_document=ReturnDocument.BEFORE,
        )
        return str((old or {}).get("active", FIRST_GENERATION))

    async def drop_collection(self, name: str) -> None:
        await self.tenants.db.drop_collection(name)

    # --- applying deltas exactly once ----------------------------------------------------------

    async def apply(self, collection: str, days: Iterable[DayTally], *, by_event_id: bool = False) -> int:
        """Apply a batch's tally: one atomic update per document, concurrently.

        A document (an organisation-day's totals, or its breakdowns) keeps per source (topic and
        partition) the highest offset it has applied (`wm.<source>`), moved in the same update as
        the counters; so a redelivery (after a crash or a rebalance, a replay) applies only what
        lies above it: each effect applies exactly once.

        Several projector processes write the same documents (each for its own partitions), so
        the update is a compare-and-set, which also fences a member that lost a partition without
        knowing it yet: the first attempt matches only while every watermark it moves is absent
        or below the batch's first offset of that source (no read first); a document that has
        seen some of these offsets makes the upsert collide on _id: we read its watermarks and
        retry with what lies above them, matching only while they are still what we read.

        With `by_event_id` the document also remembers recent event ids, for events that may
        have been published twice; the update then also matches only while none of the ids it
        adds is remembered.
        """
        projection = {"wm": 1, "applied_events": 1}

        async def update_one(day: DayTally, part: str) -> int:
            coll = self.tenants.of(day.org, collection)
            doc_id = stats_doc_id(day.org, day.day, part)
            doc: Document | None = None  # not read: first as if the document had seen none of it
            for _ in range(UPDATE_ATTEMPTS):
                watermarks: dict[str, int] = dict((doc or {}).get("wm") or {})
                applied = frozenset((doc or {}).get("applied_events") or ()) if by_event_id else None
                update = fold(day, part, watermarks, applied)
                if update is None:
                    return 0
                query: Document = {"_id": doc_id}
                for source, (first_offset, _) in update.offsets.items():
                    if doc is None:  # below this batch's first offset, or none yet
                        query[f"wm.{source}"] = {"$not": {"$gte": first_offset}}
                    elif source in watermarks:
                        query[f"wm.{source}"] = watermarks[source]
                    else:
                        query[f"wm.{source}"] = {"$exists": False}
                ops: Document = {
                    "$inc": {
                        f"counts.{dim}.{encode_key(key)}.{name}": value
                        for dim, by_key in update.counters.items()
                        for key, counters in by_key.items()
                        for name, value in counters.items()
                    },
                    "$max": {f"wm.{source}": last for source, (_, last) in update.offsets.items()},
                    "$setOnInsert": update.meta,
                }
                if by_event_id:
                    query["applied_events"] = {"$nin": update.event_ids}
                    ops["$push"] = {"applied_events": {"$each": update.event_ids, "$slice": -APPLIED_WINDOW}}
                try:
                    await coll.update_one(query, ops, upsert=True)
                    return 1
                except DuplicateKeyError:
                    # The document has seen some of these offsets, or moved on under us: look again.
                    doc = await coll.find_one({"_id": doc_id}, projection) or {}
            raise RuntimeError(f"could not apply effects to {doc_id} after {UPDATE_ATTEMPTS} attempts")

        async def update_day(day: DayTally) -> int:
            # Breakdowns first, then the totals: a reader who sees an event in a day's totals
            # finds it in the breakdowns too.
            return await update_one(day, "dims") + await update_one(day, ALL)

        results = await asyncio.gather(*(update_day(day) for day in days))
        return sum(results)

    async def stats_docs(
        self,
        collection: str,
        org: str,
        dim: str,
        from_day: str,
        to_day: str,
        keys: Sequence[str] | None = None,
    ) -> list[StatsRow]:
        """Rows of counters `{day, key, clicks, ..., revenue}` of one dimension, one per day, value
        and source (readers sum them)."""
        query: Document = {"part": stats_part(dim), "day": {"$gte": from_day, "$lte": to_day}}
        projection: Document = {"day": 1, f"counts.{dim}": 1}
        if keys is not None:
            projection = {"day": 1, **{f"counts.{dim}.{encode_key(k)}": 1 for k in keys}}
        return [
            StatsRow(day=doc["day"], key=decode_key(name), **counters)  # type: ignore[typeddict-item]
            async for doc in self.tenants.of(org, collection).find(query, projection)
            for name, counters in ((doc.get("counts") or {}).get(dim) or {}).items()
        ]

    async def delete_advocate_stats(self, collection: str, org: str, advocate_id: str) -> None:
        await self.tenants.of(org, collection).update_many(
            {"part": stats_part("advocate")},
            {"$unset": {f"counts.advocate.{encode_key(advocate_id)}": ""}},
        )

    async def first_copies(self, records: Mapping[EventKey, Record]) -> dict[EventKey, Record]:
        """Where each of these events was first counted: at the record given, for one seen for
        the first time (recorded now, before its counters are written), else where it was."""

        async def of_org(org: str, docs: list[Document]) -> dict[EventKey, Record]:
            coll = self.tenants.of(org, FIRST_COPIES)
            new = await insert_new(coll, docs)
            first = {(org, d["event_id"]): (d["source"], d["offset"]) for d in docs if d["_id"] in new}
            taken = [d["_id"] for d in docs if d["_id"] not in new]
            if taken:
                async for d in coll.find({"_id": {"$in": taken}}, {"event_id": 1, "source": 1, "offset": 1}):
                    first[(org, d["event_id"])] = (d["source"], d["offset"])
            return first

        by_org: dict[str, list[Document]] = {}
        for (org, event_id), (source, offset) in records.items():
            doc = {"_id": f"{org}|{event_id}", "event_id": event_id, "source": source, "offset": offset}
            by_org.setdefault(org, []).append(doc)
        found: dict[EventKey, Record] = {}
        for first in await asyncio.gather(*(of_org(org, docs) for org, docs in by_org.items())):
            found.update(first)
        return found

    # --- erasure ---------------------------------------------------------------------------

    async def erased_among(self, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
        if not pairs:
            return set()
        ids = [_advocate_id(org, advocate) for org, advocate in pairs]
        # One lookup per poll, whose events span organisations; each id names its organisation.
        erased = self.tenants.across(
            ERASED_ADVOCATES, why="a poll's advocates, by ids that name their organisation"
        )
        found = erased.find({"_id": {"$in": ids}}, {"org": 1, "advocate_id": 1})
        return {(d["org"], d["advocate_id"]) async for d in found}

    async def all_erased(self) -> list[tuple[str, str]]:
        erased = self.tenants.across(ERASED_ADVOCATES, why="a rebuild forgets every erased advocate again")
        return [(d["org"], d["advocate_id"]) async for d in erased.find({})]

    async def mark_erased(self, org: str, advocate_id: str, forget_at: datetime) -> None:
        # Only the fact of the erasure is kept, so replays do not bring the advocate back; and
        # only until `forget_at`: once the vault has shredded them, no event names them again
        # (a replay then sees a pseudonym, and its own erasure event takes that out).
        await self.tenants.of(org, ERASED_ADVOCATES).update_one(
            {"_id": _advocate_id(org, advocate_id)},
            {"$set": {"advocate_id": advocate_id, "forget_at": forget_at}},
            upsert=True,
        )

    async def erase_clicks(self, org: str, advocate_id: str) -> None:
        await self.tenants.of(org, CLICK_INDEX).update_many(
            {"advocate_id": advocate_id},
            # Their visitor too: it served only to credit clicks, and theirs credit nobody now.
            {"$set": {"advocate_id": ERASED, "share_id": ERASED, "team": None, "visitor_hash": None}},
        )

    async def delete_advocate(self, org: str, advocate_id: str) -> None:
        await self.tenants.of(org, ADVOCATES).delete_one({"_id": _advocate_id(org, advocate_id)})

    # --- click index -----------------------------------------------------------------------

    async def index_clicks(self, clicks: Sequence[Click]) -> None:
        by_org: dict[str, list[Document]] = {}
        for click in clicks:
            by_org.setdefault(click.org, []).append(CLICKS.document(click))
        await asyncio.gather(*(self._insert_clicks(org, docs) for org, docs in by_org.items()))

    async def _insert_clicks(self, org: str, docs: list[Document]) -> None:
        await insert_new(self.tenants.of(org, CLICK_INDEX), docs)  # a redelivery finds them indexed

    async def find_click(self, org: str, click_id: str) -> Click | None:
        return await CLICKS.one(self.tenants.of(org, CLICK_INDEX), {"_id": click_id})

    async def visitor_clicks(self, org: str, visitor_hash: str, since: datetime) -> list[Click]:
        # An erased advocate's clicks no longer reach anyone for them (those erased before their
        # visitor was cleared with them still carry it).
        query = {
            "visitor_hash": visitor_hash,
            "clicked_at": {"$gte": since},
            "bot": False,
            "advocate_id": {"$ne": ERASED},
        }
        return [CLICKS.entity(d) async for d in self.tenants.of(org, CLICK_INDEX).find(query).limit(200)]

    # --- advocates (enrolment, activity, training) --------------------------------------------

    async def upsert_advocate(
        self, org: str, advocate_id: str, team: str | None, tracking_consent: bool
    ) -> None:
        await self.tenants.of(org, ADVOCATES).update_one(
            {"_id": _advocate_id(org, advocate_id)},
            {
                "$set": {
                    "advocate_id": advocate_id,
                    "team": team,
                    "enrolled": True,
                    "tracking_consent": tracking_consent,
                }
            },
            upsert=True,
        )

    async def tracking_consent(self, org: str, advocate_id: str) -> bool:
        doc = await self.tenants.of(org, ADVOCATES).find_one(
            {"_id": _advocate_id(org, advocate_id)}, {"tracking_consent": 1}
        )
        return bool((doc or {}).get("tracking_consent", True))

    async def advocate_shared(self, org: str, advocate_id: str, shared_at: datetime) -> None:
        await self.tenants.of(org, ADVOCATES).update_one(
            {"_id": _advocate_id(org, advocate_id)},
            {
                "$max": {"last_shared_at": shared_at},
                "$setOnInsert": {"advocate_id": advocate_id, "enrolled": False},
            },
            upsert=True,
        )

    async def course_completed(self, org: str, advocate_id: str, course_id: str) -> None:
        await self.tenants.of(org, ADVOCATES).update_one(
            {"_id": _advocate_id(org, advocate_id)},
            {
                "$addToSet": {"courses": course_id},
                "$set": {"trained": True},
                "$setOnInsert": {"advocate_id": advocate_id, "enrolled": False},
            },
            upsert=True,
        )

    async def advocates(self, org: str) -> list[AdvocateActivity]:
        found = self.tenants.of(org, ADVOCATES).find(
            {"enrolled": True}, {"advocate_id": 1, "team": 1, "last_shared_at": 1, "trained": 1}
        )
        return [
            AdvocateActivity(d["advocate_id"], d.get("team"), d.get("last_shared_at"), bool(d.get("trained")))
            async for d in found
        ]
