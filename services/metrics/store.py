"""The only module of the metrics service that touches MongoDB.

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
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.metrics.domain import ALL, DayTally, fold, stats_doc_id, stats_part
from shared.events.clicks import ClickRecorded
from shared.mongo import APPLIED_WINDOW, Document, IndexSpec
from shared.outbox import outbox_index
from shared.pagination import decode_cursor, encode_cursor

META = "projection_meta"
STATS_PREFIX = "stats_g"
FIRST_GENERATION = f"{STATS_PREFIX}0"
CLICK_INDEX = "click_index"
ADVOCATES = "advocates"
ERASED = "erased_advocates"
ORG_SETTINGS = "org_settings"
API_KEYS = "api_keys"
CONVERSIONS = "conversions"
CUSTOMERS = "customers"
GOALS = "goals"
GOAL_SNAPSHOTS = "goal_snapshots"
SURVEYS = "surveys"
SURVEY_RESPONSES = "survey_responses"
# Collections whose documents may carry an outbox (shared/outbox.py).
OUTBOX_COLLECTIONS = (CONVERSIONS,)
UPDATE_ATTEMPTS = 8
# How long a projector may keep using the active generation it read (a rebuild waits twice that).
STATS_CACHE_S = 1.0


def encode_key(key: str) -> str:
    """A dimension value as a field name, safe in an update or projection path.

    Paths split on dots and a leading `$` reads as an operator, so a tag "v1.2" or a value "$x"
    cannot be a path segment as it is. MongoDB 5+ can store such names, but only aggregation
    ($getField, $setField) reaches them, not `$inc` or a projection. So: percent-encoding of '%',
    '.' and '$', behind a 'k' so that no name is empty."""
    return "k" + key.replace("%", "%25").replace(".", "%2E").replace("$", "%24")


def decode_key(name: str) -> str:
    return name[1:].replace("%24", "$").replace("%2E", ".").replace("%25", "%")


def stats_indexes(collection: str) -> list[IndexSpec]:
    return [IndexSpec(collection, [("org", ASCENDING), ("part", ASCENDING), ("day", ASCENDING)])]


INDEXES: list[IndexSpec] = [
    *stats_indexes(FIRST_GENERATION),
    IndexSpec(CLICK_INDEX, [("org", ASCENDING), ("visitor_hash", ASCENDING), ("clicked_at", ASCENDING)]),
    IndexSpec(CLICK_INDEX, [("org", ASCENDING), ("advocate_id", ASCENDING)]),
    IndexSpec(ADVOCATES, [("org", ASCENDING), ("enrolled", ASCENDING)]),
    IndexSpec(API_KEYS, [("org", ASCENDING)]),
    *(outbox_index(c) for c in OUTBOX_COLLECTIONS),
    IndexSpec(CUSTOMERS, [("org", ASCENDING), ("touches.advocate_id", ASCENDING)]),  # erasure
    IndexSpec(GOALS, [("org", ASCENDING)]),
    IndexSpec(GOAL_SNAPSHOTS, [("org", ASCENDING), ("goal_id", ASCENDING), ("date", ASCENDING)]),
    IndexSpec(SURVEYS, [("org", ASCENDING)]),
    IndexSpec(SURVEY_RESPONSES, [("org", ASCENDING), ("survey_id", ASCENDING)]),
]


class MetricsStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self._active: tuple[float, str] | None = None

    # --- projection generations ------------------------------------------------------------

    async def active_stats(self, *, fresh: bool = False) -> str:
        now = time.monotonic()
        if not fresh and self._active is not None and now - self._active[0] < STATS_CACHE_S:
            return self._active[1]
        doc = await self.db[META].find_one({"_id": "stats"})
        active = str(doc["active"]) if doc else FIRST_GENERATION
        self._active = (now, active)
        return active

    async def next_generation(self) -> str:
        """A fresh, empty stats collection name (one higher than any generation so far)."""
        names = await self.db.list_collection_names()
        numbers = [
            int(n[len(STATS_PREFIX) :])
            for n in names
            if n.startswith(STATS_PREFIX) and n[len(STATS_PREFIX) :].isdigit()
        ]
        name = f"{STATS_PREFIX}{max([0, *numbers]) + 1}"
        await self.db[name].drop()
        return name

    async def swap_stats(self, new: str) -> str:
        """Point readers and projectors at `new`; return the generation it replaced."""
        old = await self.db[META].find_one_and_update(
            {"_id": "stats"}, {"$set": {"active": new}}, upsert=True, return_document=ReturnDocument.BEFORE
        )
        return str(old["active"]) if old else FIRST_GENERATION

    async def drop_collection(self, name: str) -> None:
        await self.db[name].drop()

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
        coll = self.db[collection]
        projection = {"wm": 1, "applied_events": 1}

        async def update_one(day: DayTally, part: str) -> int:
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
    ) -> list[Document]:
        """Rows of counters `{day, key, clicks, ..., revenue}` of one dimension, one per day, value
        and source (readers sum them)."""
        query: Document = {"org": org, "part": stats_part(dim), "day": {"$gte": from_day, "$lte": to_day}}
        projection: Document = {"day": 1, f"counts.{dim}": 1}
        if keys is not None:
            projection = {"day": 1, **{f"counts.{dim}.{encode_key(k)}": 1 for k in keys}}
        return [
            {"day": doc["day"], "key": decode_key(name), **counters}
            async for doc in self.db[collection].find(query, projection)
            for name, counters in ((doc.get("counts") or {}).get(dim) or {}).items()
        ]

    async def delete_advocate_stats(self, collection: str, org: str, advocate_id: str) -> None:
        await self.db[collection].update_many(
            {"org": org, "part": stats_part("advocate")},
            {"$unset": {f"counts.advocate.{encode_key(advocate_id)}": ""}},
        )

    # --- erasure ---------------------------------------------------------------------------

    async def erased_among(self, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
        if not pairs:
            return set()
        ids = [f"{org}|{advocate}" for org, advocate in pairs]
        found = self.db[ERASED].find({"_id": {"$in": ids}}, {"org": 1, "advocate_id": 1})
        return {(d["org"], d["advocate_id"]) async for d in found}

    async def mark_erased(self, org: str, advocate_id: str) -> None:
        # Only the fact of the erasure is kept, so replays do not bring the advocate back.
        await self.db[ERASED].update_one(
            {"_id": f"{org}|{advocate_id}"}, {"$set": {"org": org, "advocate_id": advocate_id}}, upsert=True
        )

    async def erase_advocate(self, org: str, advocate_id: str, stats_collection: str) -> None:
        await self.delete_advocate_stats(stats_collection, org, advocate_id)
        await self.db[CLICK_INDEX].update_many(
            {"org": org, "advocate_id": advocate_id},
            {"$set": {"advocate_id": "erased", "share_id": "erased"}},
        )

    async def delete_advocate(self, org: str, advocate_id: str) -> None:
        await self.db[ADVOCATES].delete_one({"_id": f"{org}|{advocate_id}"})

    # --- click index -----------------------------------------------------------------------

    async def index_clicks(self, docs: list[Document]) -> None:
        if not docs:
            return
        try:
            await self.db[CLICK_INDEX].insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise  # only "already indexed" is expected on redelivery

    async def find_click(self, org: str, click_id: str) -> Document | None:
        return await self.db[CLICK_INDEX].find_one({"_id": click_id, "org": org})

    async def visitor_clicks(self, org: str, visitor_hash: str, since: datetime) -> list[Document]:
        query = {"org": org, "visitor_hash": visitor_hash, "clicked_at": {"$gte": since}, "bot": False}
        return [d async for d in self.db[CLICK_INDEX].find(query).limit(200)]

    # --- advocates (enrolment, activity, training) --------------------------------------------

    async def upsert_advocate(self, org: str, advocate_id: str, team: str | None) -> None:
        await self.db[ADVOCATES].update_one(
            {"_id": f"{org}|{advocate_id}"},
            {"$set": {"org": org, "advocate_id": advocate_id, "team": team, "enrolled": True}},
            upsert=True,
        )

    async def advocate_shared(self, org: str, advocate_id: str, shared_at: datetime) -> None:
        await self.db[ADVOCATES].update_one(
            {"_id": f"{org}|{advocate_id}"},
            {
                "$max": {"last_shared_at": shared_at},
                "$setOnInsert": {"org": org, "advocate_id": advocate_id, "enrolled": False},
            },
            upsert=True,
        )

    async def course_completed(self, org: str, advocate_id: str, course_id: str) -> None:
        await self.db[ADVOCATES].update_one(
            {"_id": f"{org}|{advocate_id}"},
            {
                "$addToSet": {"courses": course_id},
                "$set": {"trained": True},
                "$setOnInsert": {"org": org, "advocate_id": advocate_id, "enrolled": False},
            },
            upsert=True,
        )

    async def advocates(self, org: str) -> list[Document]:
        query = {"org": org, "enrolled": True}
        return [
            d async for d in self.db[ADVOCATES].find(query, {"team": 1, "last_shared_at": 1, "trained": 1})
        ]

    # --- organisation settings ---------------------------------------------------------------

    async def org_settings(self, org: str) -> Document:
        return await self.db[ORG_SETTINGS].find_one({"_id": org}) or {"_id": org}

    async def set_org_settings(self, org: str, values: Document) -> None:
        await self.db[ORG_SETTINGS].update_one({"_id": org}, {"$set": values}, upsert=True)

    # --- API keys ----------------------------------------------------------------------------

    async def insert_api_key(self, doc: Document) -> None:
        await self.db[API_KEYS].insert_one(doc)

    async def api_key(self, key_id: str) -> Document | None:
        return await self.db[API_KEYS].find_one({"_id": key_id})

    async def list_by_org(
        self, collection: str, org: str, cursor: str | None, limit: int, extra: Document | None = None
    ) -> tuple[list[Document], str | None]:
        query: Document = {"org": org, **(extra or {})}
        after = decode_cursor(cursor)
        if after is not None:
            query["_id"] = {"$gt": after}
        docs = [d async for d in self.db[collection].find(query).sort("_id", ASCENDING).limit(limit + 1)]
        next_cursor = encode_cursor(docs[limit - 1]["_id"]) if len(docs) > limit else None
        return docs[:limit], next_cursor

    async def revoke_api_key(self, org: str, key_id: str, now: datetime) -> Document | None:
        return await self.db[API_KEYS].find_one_and_update(
            {"_id": key_id, "org": org},
            {"$set": {"revoked_at": now}},
            return_document=ReturnDocument.AFTER,
        )

    # --- conversions (claim, customers) -----------------------------------------------------------

    async def claim_conversion(self, doc: Document) -> Document | None:
        """Insert the conversion of a (customer, type) with its event queued; None when it is
        new, else the existing one."""
        try:
            await self.db[CONVERSIONS].insert_one(doc)
            return None
        except DuplicateKeyError:
            return await self.db[CONVERSIONS].find_one({"_id": doc["_id"]})

    async def customer_touches(self, org: str, customer_id: str) -> list[Document]:
        doc = await self.db[CUSTOMERS].find_one({"_id": f"{org}|{customer_id}"})
        return list(doc.get("touches", [])) if doc else []

    async def add_customer_touches(self, org: str, customer_id: str, touches: list[Document]) -> None:
        await self.db[CUSTOMERS].update_one(
            {"_id": f"{org}|{customer_id}"},
            {"$push": {"touches": {"$each": touches}}, "$setOnInsert": {"org": org}},
            upsert=True,
        )

    async def erase_customer_touches(self, org: str, advocate_id: str) -> None:
        await self.db[CUSTOMERS].update_many(
            {"org": org, "touches.advocate_id": advocate_id},
            {"$pull": {"touches": {"advocate_id": advocate_id}}},
        )

    # --- goals -------------------------------------------------------------------------------

    async def insert(self, collection: str, doc: Document) -> None:
        await self.db[collection].insert_one(doc)

    async def get(self, collection: str, org: str, doc_id: str) -> Document | None:
        return await self.db[collection].find_one({"_id": doc_id, "org": org})

    async def delete(self, collection: str, org: str, doc_id: str) -> bool:
        result = await self.db[collection].delete_one({"_id": doc_id, "org": org})
        return result.deleted_count == 1

    async def all_goals(self) -> list[Document]:
        return [d async for d in self.db[GOALS].find({})]

    async def save_snapshot(self, org: str, goal_id: str, day: str, value: float, enrolled: int) -> None:
        await self.db[GOAL_SNAPSHOTS].update_one(
            {"_id": f"{goal_id}|{day}"},
            {"$set": {"org": org, "goal_id": goal_id, "date": day, "value": value, "enrolled": enrolled}},
            upsert=True,
        )

    async def snapshots(self, org: str, goal_id: str) -> list[Document]:
        query = {"org": org, "goal_id": goal_id}
        return [d async for d in self.db[GOAL_SNAPSHOTS].find(query).sort("date", ASCENDING).limit(400)]

    # --- surveys -----------------------------------------------------------------------------

    async def add_response(self, doc: Document) -> bool:
        try:
            await self.db[SURVEY_RESPONSES].insert_one(doc)
            return True
        except DuplicateKeyError:
            return False

    async def responses(self, org: str, survey_id: str) -> list[Document]:
        query = {"org": org, "survey_id": survey_id}
        return [d async for d in self.db[SURVEY_RESPONSES].find(query).sort("_id", ASCENDING)]

    async def anonymise_responses(self, org: str, respondent_hash: str) -> None:
        await self.db[SURVEY_RESPONSES].update_many(
            {"org": org, "respondent": respondent_hash}, {"$set": {"respondent": None}}
        )


def utc_now() -> datetime:
    return datetime.now(UTC)


def click_index_doc(org: str, data: ClickRecorded, trace: dict[str, str]) -> Document:
    """The click index row kept for attribution (no IP, no user agent: only the visitor hash).

    `trace` is the click event's W3C trace context: the lead or sale that names this click
    continues that trace, so one trace runs from the share to the conversion.
    """
    return {
        "trace": trace,
        "_id": data.click_id,
        "org": org,
        "share_id": data.share_id,
        "advocate_id": data.advocate_id,
        "content_id": data.content_id,
        "network": data.network,
        "team": data.team,
        "tags": list(data.tags),
        "clicked_at": data.clicked_at,
        "visitor_hash": data.visitor_hash,
        "bot": data.bot,
        "self": data.self_click,
    }
