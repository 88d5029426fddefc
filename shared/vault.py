"""The person vault: each person's pseudonym and data key, the one way from a topic back to them.

Events name people by pseudonym and carry what is about them encrypted under their own key
(shared/events/personal.py). The vault keeps, per organisation and person, the pseudonym and the
key, in its own database (`CHORUS_VAULT_DATABASE`, by default `<prefix>_vault`) that every
service reads: a key service in spirit, with MongoDB behind it. Producers `seal` events on the
way out (a person is added on first sight); consumers `reveal` them on the way in.

Erasure: the handler of `chorus.advocate.erased` (in sharing) sets when the person's entry is
shredded: the event's time plus `CHORUS_ERASURE_GRACE_S`, long enough for every consumer to
have erased its own copy (they need the entry to know whom the event names). From then on the
entry reads as gone, and the periodic `shred_due` deletes it: every event that names the person,
on every topic, in every rebuild and replay, holds only a pseudonym linked to nobody and
ciphertexts nobody can open.

Entries are cached for `CHORUS_VAULT_CACHE_S` (a few seconds), which bounds how long a process
may still reveal an entry after it was shredded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from bson.binary import Binary
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.clock import utc_now
from shared.events.envelope import AnyEvent
from shared.events.personal import (
    Person,
    new_person,
    pseudonyms_in,
    reveal_event,
    seal_event,
    subs_in,
)
from shared.migrations import Migration, rewrite
from shared.mongo import Document, IndexSpec, create_client, ensure_indexes
from shared.settings import ChorusSettings
from shared.tenancy import Tenants

PEOPLE = "people"
INDEXES = [
    IndexSpec(PEOPLE, [("org", ASCENDING), ("sub", ASCENDING)], unique=True),
    IndexSpec(PEOPLE, [("shred_at", ASCENDING)], options={"sparse": True}),
]
_CACHE_MAX = 200_000


class Vault:
    def __init__(self, settings: ChorusSettings, *, client: AsyncMongoClient[Document] | None = None) -> None:
        """`client`: the service's own (shared connections); none: the vault opens its own."""
        self._settings = settings
        self._own_client = client is None
        self._client = client
        self._db: AsyncDatabase[Document] | None = None
        self._ready: asyncio.Lock | None = None
        self._ttl = settings.vault_cache_s
        self._by_sub: dict[tuple[str, str], tuple[Person, float]] = {}
        self._by_pseudonym: dict[tuple[str, str], tuple[Person | None, float]] = {}

    async def _tenants(self) -> Tenants:
        if self._db is None:
            if self._ready is None:
                self._ready = asyncio.Lock()
            async with self._ready:
                if self._db is None:
                    if self._client is None:
                        self._client = create_client(self._settings)
                    db = self._client[self._settings.vault_database_name()]
                    await ensure_indexes(db, INDEXES)
                    self._db = db
        return Tenants(self._db)

    async def close(self) -> None:
        if self._own_client and self._client is not None:
            await self._client.close()
            self._client = None
            self._db = None

    # --- producers ---------------------------------------------------------------------------

    async def seal(self, events: Sequence[AnyEvent]) -> list[AnyEvent]:
        """`events` as they go on a topic (see shared/events/personal.py)."""
        wanted: dict[str, set[str]] = {}
        for event in events:
            if subs := subs_in(event.data):
                wanted.setdefault(event.tenant, set()).update(subs)
        if not wanted:
            return list(events)
        people = {org: await self.people_of(org, subs) for org, subs in wanted.items()}
        return [
            seal_event(event, people[event.tenant]) if event.tenant in people else event for event in events
        ]

    async def people_of(self, org: str, subs: set[str]) -> dict[str, Person]:
        """The entries of these people of `org`, added for those seen for the first time."""
        now = time.monotonic()
        found: dict[str, Person] = {}
        for sub in subs:
            cached = self._by_sub.get((org, sub))
            if cached is not None and cached[1] > now:
                found[sub] = cached[0]
        missing = subs - found.keys()
        if missing:
            people = (await self._tenants()).of(org, PEOPLE)
            async for doc in people.find({"sub": {"$in": sorted(missing)}, **_alive(utc_now())}):
                found[doc["sub"]] = _person(doc)
            for sub in missing - found.keys():
                found[sub] = await self._add(org, sub)
            self._remember((found[sub] for sub in missing), now)
        return found

    async def _add(self, org: str, sub: str) -> Person:
        """A new entry for a person seen for the first time (or again after an erasure): one
        insert, the unique (org, sub) index settling a race."""
        person = new_person(org, sub)
        people = (await self._tenants()).of(org, PEOPLE)
        entry = {"_id": person.pseudonym, "sub": sub, "key": Binary(person.key), "created_at": utc_now()}
        try:
            await people.insert_one(entry)
            return person
        except DuplicateKeyError:
            pass
        # Taken: another process added them just now (theirs is the one), or the erased person's
        # entry is there, due for shredding: that one goes now, not at the sweep.
        await people.delete_many({"sub": sub, "shred_at": {"$lte": utc_now()}})
        try:
            await people.insert_one(entry)
            return person
        except DuplicateKeyError:
            doc = await people.find_one({"sub": sub})
            if doc is None:
                raise
            return _person(doc)

    # --- consumers ---------------------------------------------------------------------------

    async def reveal(self, events: Sequence[AnyEvent]) -> None:
        """Freshly decoded `events` as consumers read them, in place: the people still in the vault
        named again (shared/events/personal.py `reveal`)."""
        wanted: dict[str, set[str]] = {}
        for event in events:
            if found := pseudonyms_in(event.data):
                wanted.setdefault(event.tenant, set()).update(found)
        people = {org: await self.people(org, found) for org, found in wanted.items()}
        for event in events:
            if event.tenant in people:
                reveal_event(event, people[event.tenant])

    async def people(self, org: str, pseudonyms: set[str]) -> dict[str, Person]:
        """The people of `org` these pseudonyms name; an erased person is not among them."""
        now = time.monotonic()
        found: dict[str, Person] = {}
        missing: set[str] = set()
        for pseudonym in pseudonyms:
            cached = self._by_pseudonym.get((org, pseudonym))
            if cached is None or cached[1] <= now:
                missing.add(pseudonym)
            elif cached[0] is not None:
                found[pseudonym] = cached[0]
        if missing:
            people = (await self._tenants()).of(org, PEOPLE)
            async for doc in people.find({"_id": {"$in": sorted(missing)}, **_alive(utc_now())}):
                found[doc["_id"]] = _person(doc)
            if len(self._by_pseudonym) >= _CACHE_MAX:
                self._by_pseudonym.clear()
            for pseudonym in missing:
                self._by_pseudonym[(org, pseudonym)] = (found.get(pseudonym), now + self._ttl)
        return found

    # --- erasure -----------------------------------------------------------------------------

    async def shred_after(self, org: str, sub: str, at: datetime) -> None:
        """Set when the person's entry is shredded (the earliest time asked wins)."""
        people = (await self._tenants()).of(org, PEOPLE)
        await people.update_many({"sub": sub, "shred_at": {"$not": {"$lte": at}}}, {"$set": {"shred_at": at}})
        self._by_sub.pop((org, sub), None)

    async def shred_due(self) -> int:
        """Delete the entries whose shredding is due (a periodic job of sharing's)."""
        people = (await self._tenants()).across(PEOPLE, why="shredding erased people of every org")
        deleted = await people.delete_many({"shred_at": {"$lte": utc_now()}})
        return deleted.deleted_count

    def _remember(self, people: Iterable[Person], now: float) -> None:
        if len(self._by_sub) >= _CACHE_MAX:
            self._by_sub.clear()
        for person in people:
            self._by_sub[(person.org, person.sub)] = (person, now + self._ttl)


def forget_erasure_at(erased_at: datetime, grace: timedelta) -> datetime:
    """Until when a service may keep the fact that a person was erased at `erased_at` (by their
    id, so that late events and replays leave them out): an hour past the shredding (`grace`
    after the erasure, CHORUS_ERASURE_GRACE_S), after which no event names them any more (only a
    pseudonym linked to nobody)."""
    return erased_at + grace + timedelta(hours=1)


def erasure_markers_expire(collection: str, settings: ChorusSettings) -> Migration:
    """A service's markers of erasures written before they expired get the latest `forget_at` a
    marker made now would have (so that none is kept for ever)."""
    return rewrite(
        f"2026-12-erasure-markers-expire-{collection}",
        collection,
        {"forget_at": {"$exists": False}},
        [{"$set": {"forget_at": forget_erasure_at(utc_now(), timedelta(seconds=settings.erasure_grace_s))}}],
    )


def _alive(now: datetime) -> Document:
    return {"$or": [{"shred_at": {"$exists": False}}, {"shred_at": {"$gt": now}}]}


def _person(doc: Document) -> Person:
    return Person(doc["_id"], doc["org"], doc["sub"], bytes(doc["key"]))
