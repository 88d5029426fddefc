"""Tallying a busy topic's polls in a worker process.

A projector of a busy topic spends most of its time decoding events and folding them, in Python,
on one core (bench/pipeline). A tallied subscription moves that work out of the consumer's
process: the runner sends each poll's raw records to a worker process, which decodes them as
`decode` does and calls the subscriber's pure `tally` function on the topic and the events (an
iterator over the poll, in each partition's offset order); the runner gets
back the tally (small: what the poll adds up to), the records that were not valid events (it
dead-letters them) and, when tracing is on, what each record's processing span should say. The
consumer's process is left with the Kafka client, the writes and the commits, and it fetches
the next poll while the worker tallies this one.

`tally` must be a module-level function (it is pickled by name) and pure: it runs in another
process, with no connection to anything.

The events come to `tally` as they are on the topic, people sealed (shared/events/personal.py),
with a `reveal(org, data)` that reveals one event's data in place: the tally reveals what it
keeps, so that it can reveal each distinct shape of event once. Revealing every click cost about
a sixth of the projector's worker (bench/pipeline); a poll's clicks repeat a few advocates.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from shared.events import DecodeError, EventData, UnknownEventType, decode
from shared.events.personal import Person, is_pseudonym, reveal, reveal_event
from shared.messaging.batch import D, Delivered, Reveal
from shared.messaging.tracing import event_attributes

log = logging.getLogger(__name__)

# A pure function of a topic's name, a poll's events (an iterator, to be read once), people
# sealed, and how to reveal them (see above).
Tallier = Callable[[str, Iterator[Delivered], Reveal], Any]
# How often a poll is sent again to a worker process that died on it, before the runner tallies
# its records one by one (to dead-letter the one that kills the worker).
WORKER_RESTARTS = 2


@dataclass(frozen=True)
class RawPartition:
    """One partition's records of a poll, undecoded, as columns (cheap to send to a process)."""

    partition: int
    offsets: list[int]
    values: list[bytes | None]
    types: list[bytes | None]  # each record's ce_type header, undecoded
    # Per record, whether its processing span may be kept (tracing.may_be_recorded): the worker
    # says what those spans should carry. None: tracing is off, and no span is kept.
    traced: list[bool] | None = None


@dataclass(frozen=True)
class TallyRequest:
    """A poll to tally: `tallier` over `topic`'s records decoded as `read_as`."""

    tallier: Tallier
    topic: str
    parts: Sequence[RawPartition]
    read_as: tuple[type[EventData], ...] = ()
    # The people the worker is told of (shared/vault.py), per organisation: found, or absent
    # (erased). A worker reveals each event with them, as a consumer's process does. A pseudonym
    # it does not know makes it answer `unknown` instead of a tally, and the runner asks again
    # with those people. News of a person older than `people_ttl_s` still reveals, but the
    # tally names them `stale`, and the runner confirms them before it keeps the tally.
    people: Mapping[str, Mapping[str, Person]] = field(default_factory=dict)
    absent: Mapping[str, frozenset[str]] = field(default_factory=dict)
    people_ttl_s: float = 5.0


@dataclass(frozen=True)
class Tallied:
    """What a worker made of a poll: the tally of its events (None: no event to tally), the
    records it left out, by position in the poll (not ours, or not valid: with the error), and
    per tallied record what its span says of the event (tracing on; empty for a span not kept)."""

    tally: Any
    skipped: frozenset[int]
    invalid: dict[int, str]
    span_attributes: list[dict[str, str]] | None
    # Per organisation, pseudonyms the worker did not know: no tally, ask again with them.
    unknown: dict[str, set[str]] = field(default_factory=dict)
    # Per organisation, pseudonyms revealed with news older than `people_ttl_s`: the tally holds
    # only if the vault still has each of them.
    stale: dict[str, set[str]] = field(default_factory=dict)


# What this process was told of people, per (organisation, pseudonym): the person and until when
# (monotonic) that is fresh, or None for one the vault no longer has (erased), which holds for
# good: a pseudonym is never given out again. Kept across polls, so the runner looks people up
# only when a poll names someone new, and confirms the ones whose news is old.
_people: dict[tuple[str, str], tuple[Person | None, float]] = {}
_PEOPLE_MAX = 200_000


class _Known(Mapping[str, Person]):
    """The people of one organisation this process knows; notes the pseudonyms it does not know
    and the people whose news is no longer fresh."""

    def __init__(self, org: str, now: float, unknown: set[str], stale: set[str]) -> None:
        self._org, self._now, self._unknown, self._stale = org, now, unknown, stale

    def get(self, pseudonym: str, default: Any = None) -> Any:
        entry = _people.get((self._org, pseudonym))
        if entry is None:
            if is_pseudonym(pseudonym):
                self._unknown.add(pseudonym)
            return default
        person, fresh_until = entry
        if person is None:
            return default
        if fresh_until <= self._now:
            self._stale.add(pseudonym)
        return person

    def __getitem__(self, pseudonym: str) -> Person:
        person = self.get(pseudonym)
        if person is None:
            raise KeyError(pseudonym)
        return person  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _learn(request: TallyRequest, now: float) -> None:
    if len(_people) >= _PEOPLE_MAX:
        _people.clear()
    fresh_until = now + request.people_ttl_s
    for org, found in request.people.items():
        for pseudonym, person in found.items():
            _people[(org, pseudonym)] = (person, fresh_until)
    for org, gone in request.absent.items():
        for pseudonym in gone:
            _people[(org, pseudonym)] = (None, fresh_until)


def tally_poll(request: TallyRequest) -> Tallied:
    """Decode a poll's records and tally them (in the worker process, or in-process). The tallier
    gets the events as they are decoded, so each can be freed before the next is made: a poll's
    events alive together cost more to make and to free (cold memory)."""
    skipped: set[int] = set()
    invalid: dict[int, str] = {}
    topic, read_as = request.topic, request.read_as
    attributes: list[dict[str, str]] | None = (
        [] if any(part.traced is not None for part in request.parts) else None
    )
    hints: dict[bytes | None, str | None] = {None: None}
    found = False
    now = time.monotonic()
    _learn(request, now)
    unknown: dict[str, set[str]] = {}
    stale: dict[str, set[str]] = {}
    known: dict[str, _Known] = {}

    def people_of(org: str) -> _Known:
        people = known.get(org)
        if people is None:
            people = known[org] = _Known(
                org, now, unknown.setdefault(org, set()), stale.setdefault(org, set())
            )
        return people

    def reveal_data(org: str, data: D) -> D:
        return reveal(data, people_of(org))

    def events() -> Iterator[Delivered]:
        nonlocal found
        position = -1
        for part in request.parts:
            traced = part.traced
            for index, (offset, value, type_header) in enumerate(
                zip(part.offsets, part.values, part.types, strict=True)
            ):
                position += 1
                hint = hints.get(type_header)
                if hint is None and type_header is not None:
                    hint = hints[type_header] = type_header.decode("utf-8", errors="replace")
                try:
                    event = decode(value, hint, read_as)
                except UnknownEventType:
                    skipped.add(position)  # a newer producer's type: not ours to handle
                    continue
                except DecodeError as exc:
                    skipped.add(position)
                    invalid[position] = str(exc)
                    continue
                found = True
                if attributes is not None:
                    # A span that is kept names the event's people: reveal it now. One that is
                    # not (its trace was not sampled) is never asked what it carries.
                    attributes.append(
                        event_attributes(reveal_event(event, people_of(event.tenant)))
                        if traced is not None and traced[index]
                        else {}
                    )
                yield Delivered(event, topic, part.partition, offset)

    tally = request.tallier(topic, events(), reveal_data)
    unknown = {org: pseudonyms for org, pseudonyms in unknown.items() if pseudonyms}
    if unknown:  # some events were folded unrevealed: this tally is not the one to keep
        return Tallied(None, frozenset(skipped), invalid, attributes, unknown)
    stale = {org: pseudonyms for org, pseudonyms in stale.items() if pseudonyms}
    return Tallied(tally if found else None, frozenset(skipped), invalid, attributes, stale=stale)


def _start_worker() -> None:
    from shared.app import tune_gc  # here: shared.app imports the runner, which imports this

    tune_gc()  # a poll's events are alive together here too
    # The consumer's process decides when its workers stop (Ctrl-C and SIGTERM reach the whole
    # process group): a worker gone before the consumer has finished its last poll would only be
    # started again. So a worker must notice itself when the consumer's process dies (killed,
    # OOM): the pool's pipes never tell it, as it holds both of their ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _exit_with(parent_sentinel: int) -> None:
    multiprocessing.connection.wait([parent_sentinel])
    os._exit(0)


def _ready() -> None:
    """Run once in each new worker, so that it has started before the first poll."""


class TallyWorkers:
    """The worker processes of one consumer (`processes` 0: tally in the consumer's process).

    A worker that dies (killed, out of memory) is replaced; the poll it had is sent again. A
    record tallied `alone` (the search for the one that kills its worker) runs with no other
    tally beside it: a record that kills the worker then takes down only its own attempts, never
    a good poll's that shared the pool.
    """

    def __init__(self, processes: int) -> None:
        self._processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._restarting = asyncio.Lock()
        self._turns = asyncio.Condition()
        self._running = 0  # tallies in the pool now
        self._alone = False  # a tally that must run alone holds the pool
        self._waiting_alone = 0

    async def start(self) -> None:
        """Start the processes and wait until they are ready: a spawned worker takes a second or
        two to import what it runs, which should not land on the first poll."""
        if self._processes > 0 and self._pool is None:
            # spawn: forking a process that runs an event loop and client threads is unsafe.
            pool = ProcessPoolExecutor(
                self._processes, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker
            )
            loop = asyncio.get_running_loop()
            await asyncio.gather(*(loop.run_in_executor(pool, _ready) for _ in range(self._processes)))
            self._pool = pool

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    async def tally(self, request: TallyRequest, *, alone: bool = False) -> Tallied:
        if self._processes == 0:
            return tally_poll(request)
        async with self._turns:
            if alone:
                self._waiting_alone += 1  # from now on, new tallies wait behind it
                await self._turns.wait_for(lambda: not self._running)
                self._waiting_alone -= 1
            else:
                await self._turns.wait_for(lambda: not self._alone and not self._waiting_alone)
            self._running += 1
            self._alone = alone
        try:
            return await self._tally(request)
        finally:
            async with self._turns:
                self._running -= 1
                self._alone = False
                self._turns.notify_all()

    async def _tally(self, request: TallyRequest) -> Tallied:
        loop = asyncio.get_running_loop()
        for attempt in range(WORKER_RESTARTS + 1):
            pool = self._pool
            if pool is None:
                raise RuntimeError("the tally workers are not started")
            try:
                return await loop.run_in_executor(pool, tally_poll, request)
            except BrokenProcessPool:
                if attempt == WORKER_RESTARTS:
                    raise
                log.warning(
                    "tally worker for %s died (attempt %s); starting another", request.topic, attempt + 1
                )
                await self._replace(pool)
        raise AssertionError("unreachable")

    async def _replace(self, broken: ProcessPoolExecutor) -> None:
        async with self._restarting:
            if self._pool is broken:  # not replaced already, for another poll it had
                broken.shutdown(wait=False, cancel_futures=True)
                self._pool = None
                await self.start()
