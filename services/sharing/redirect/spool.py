"""The local durable spool of click events, and the relay that drains it to Kafka.

The redirect never waits on Kafka: it appends the click to an in-memory buffer. Every
`click_flush_interval_s` the buffer is committed to a sqlite3 file in WAL mode with
synchronous=FULL (one fsync per batch, on a worker thread so the event loop never blocks on the
disk). The relay reads committed rows in order, publishes them with the EventProducer and deletes
only the rows the broker acknowledged, so a broker outage of any length loses nothing: rows wait
in the file and go out when Kafka is back. A crash of the process itself can lose the clicks
not yet committed: those of the last flush interval (10 ms by default) and of the commit under
way (one fsync; tens of milliseconds in all under a burst, measured in bench/redirect).

Each click's event id is fixed when the click happens, so a row re-sent after an unclear failure
carries the same CloudEvent id and consumers dedupe it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Link, SpanKind
from pydantic_core import from_json, to_json

from services.sharing.redirect import domain
from services.sharing.redirect.store import NewVisitor, SeenVisitorsStore
from services.sharing.settings import SOURCE
from shared.events import Event
from shared.events.clicks import ClickRecorded
from shared.liveness import for_good
from shared.messaging import EventProducer
from shared.messaging.tracing import extract
from shared.settings import ChorusSettings

log = logging.getLogger(__name__)
tracer = trace.get_tracer("chorus.sharing.redirect")

ClickRecord = dict[str, Any]
MAX_LINKS = 128  # the SDK's default limit of links per span
# Clicks serialised between two turns of the event loop (about 0.3 ms), and rows per INSERT.
FLUSH_STEP = 200

# The spools open in this process, for two gauges on /metrics (and over OTLP):
# - chorus_click_spool_backlog: clicks committed to the file and not yet acknowledged by Kafka.
#   Near zero while Kafka is up (the relay drains every few milliseconds); a backlog that stays
#   up means the clicks are not reaching Kafka, and the file (a small volume per redirect
#   replica) fills. The flushing side counts it, every BACKLOG_EVERY_S: that is the service
#   process, which serves /metrics, also when a relay process drains the file.
# - chorus_click_spool_buffered: clicks the redirect took and has not yet committed to the file,
#   what a crash of the process loses. A few hundred under a burst while the disk keeps up; one
#   that grows means the commits (an fsync each) are slower than the clicks come.
BACKLOG_EVERY_S = 5.0
_open_spools: set[ClickSpool] = set()


def _observe_backlog(options: CallbackOptions) -> Iterable[Observation]:
    counted = [spool.counted for spool in _open_spools if spool.counted is not None]
    if counted:
        yield Observation(sum(counted))


def _observe_buffered(options: CallbackOptions) -> Iterable[Observation]:
    if _open_spools:
        yield Observation(sum(spool.buffered for spool in _open_spools))


_meter = metrics.get_meter("chorus.sharing.spool")
_meter.create_observable_gauge(
    "chorus.click_spool.backlog",
    callbacks=[_observe_backlog],
    description="clicks in the spool file not yet acknowledged by Kafka",
)
_meter.create_observable_gauge(
    "chorus.click_spool.buffered",
    callbacks=[_observe_buffered],
    description="clicks taken by the redirect and not yet committed to the spool file",
)


class ClickSpool:
    """Append in memory, commit in batches, read and delete in order. One sqlite connection,
    used only from one worker thread."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._buffer: list[ClickRecord] = []
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="click-spool")
        self._conn: sqlite3.Connection | None = None
        self.counted: int | None = None  # rows at the flushing side's last count (the backlog)

    async def open(self) -> None:
        await self._run(self._open)
        _open_spools.add(self)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=10000")  # the relay may run in another process
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS clicks (seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)"
        )
        self._conn = conn

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def append(self, record: ClickRecord) -> None:
        """The request path's only step: no I/O."""
        self._buffer.append(record)

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    async def flush(self) -> int:
        """Commit what was appended since the last flush (one transaction, one fsync)."""
        if not self._buffer:
            return 0
        batch, self._buffer = self._buffer, []
        # Serialise here, on the event loop's thread: CPU work on the spool's thread would hold
        # the GIL against the loop (the convoy effect) and stall every request by milliseconds.
        # In steps, letting requests in between: after a slow fsync the batch holds thousands of
        # clicks, and serialising them at once held the loop for up to 120 ms (the redirect's p99).
        try:
            steps: list[list[bytes]] = []
            for start in range(0, len(batch), FLUSH_STEP):
                if start:
                    await asyncio.sleep(0)
                steps.append([to_json(record) for record in batch[start : start + FLUSH_STEP]])
            await self._run(self._insert, steps)
        except BaseException:
            self._buffer[:0] = batch  # keep them for the next attempt, in order
            raise
        return len(batch)

    def _insert(self, steps: list[list[bytes]]) -> None:
        assert self._conn is not None
        # A statement per step, not per row: sqlite3 lets go of the GIL for every statement it
        # runs, and while the loop is busy with requests taking it back costs about 0.1 ms. A row
        # at a time, 10,000 clicks took 1.4 s to write, and the buffer grew faster than that.
        with self._conn:  # BEGIN ... COMMIT
            self._conn.execute("BEGIN IMMEDIATE")
            for rows in steps:
                self._conn.execute(_insert_sql(len(rows)), rows)

    async def read(self, limit: int) -> list[tuple[int, ClickRecord]]:
        rows: list[tuple[int, bytes | str]] = await self._run(self._select, limit)
        return [(seq, from_json(body)) for seq, body in rows]  # str: a row of an earlier version

    def _select(self, limit: int) -> list[tuple[int, bytes | str]]:
        assert self._conn is not None
        return self._conn.execute("SELECT seq, body FROM clicks ORDER BY seq LIMIT ?", (limit,)).fetchall()

    async def delete(self, seqs: Sequence[int]) -> None:
        if seqs:
            await self._run(self._delete, list(seqs))

    def _delete(self, seqs: list[int]) -> None:
        assert self._conn is not None
        seqs.sort()
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            if seqs[-1] - seqs[0] + 1 == len(seqs):  # the usual case: one contiguous run
                self._conn.execute("DELETE FROM clicks WHERE seq BETWEEN ? AND ?", (seqs[0], seqs[-1]))
            else:
                self._conn.executemany("DELETE FROM clicks WHERE seq = ?", [(s,) for s in seqs])

    async def count(self) -> int:
        """Committed rows not yet acknowledged by Kafka."""
        return int(await self._run(lambda: self._conn.execute("SELECT count(*) FROM clicks").fetchone()[0]))  # type: ignore[union-attr]

    async def close(self) -> None:
        _open_spools.discard(self)
        self.counted = None
        await self.flush()
        await self._run(self._close)
        self._executor.shutdown(wait=True)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@functools.cache
def _insert_sql(rows: int) -> str:
    placeholders = ", ".join(["(?)"] * rows)  # only placeholders: the values are bound
    return f"INSERT INTO clicks (body) VALUES {placeholders}"  # noqa: S608


def click_event(record: ClickRecord) -> Event[Any]:
    data = dict(record["data"])
    data["clicked_at"] = datetime.fromtimestamp(record["time"], UTC)
    return Event.create(
        ClickRecorded.model_validate(data),
        tenant=record["org"],
        source=SOURCE,
        time=data["clicked_at"],
        event_id=record["id"],
    )


def request_span_link(record: ClickRecord) -> Link | None:
    """The visitor's request span, recorded now with the timings the redirect measured.

    Creating a span on the redirect itself costs more than the rest of the request; the redirect
    notes its start and end (two clock reads) and the span is emitted here, off the hot path, as
    the root of the visitor's own trace. The click's spans link to it.
    """
    start_ns, end_ns = record.get("span") or (None, None)
    if start_ns is None:
        return None
    span = tracer.start_span(
        "GET /r/{code}",
        context=otel_context.Context(),  # a new trace: the visitor's request
        kind=SpanKind.SERVER,
        start_time=start_ns,
        attributes={
            "http.request.method": "GET",
            "http.route": "/r/{code}",
            "http.response.status_code": 302,
            "chorus.click_id": record["id"],
        },
    )
    span.end(end_time=end_ns)
    context = span.get_span_context()
    return Link(context) if context.trace_flags.sampled else None  # not a link to a span never kept


class ClickRelay:
    """Commits the spool's buffer and drains the spool to Kafka, until stopped."""

    def __init__(
        self,
        settings: ChorusSettings,
        spool: ClickSpool,
        *,
        seen: SeenVisitorsStore | None = None,
        flush_interval_s: float,
        batch: int,
        idle_s: float | None = None,
    ) -> None:
        self._settings = settings
        self.spool = spool
        self._seen = seen  # the visitors every replica has seen: what draining needs
        self._flush_interval_s = flush_interval_s
        self._batch = batch
        self._producer: EventProducer | None = None
        self.tasks: list[asyncio.Task[None]] = []  # its loops, until stopped: one that ends did so for good
        self._wake = asyncio.Event()
        self._idle_s = 0.5 if idle_s is None else idle_s
        self.published = 0
        self.flush_error: str | None = None  # why the last commit to the spool file failed

    async def start(self, *, flush: bool = True, drain: bool = True) -> None:
        """Run the flush loop (where the redirect appends) and/or the drain loop (anywhere that
        can open the spool file: this process or a relay process beside it)."""
        await self.spool.open()
        loops = {"flush": self._flush_loop, "backlog": self._backlog_loop} if flush else {}
        if drain:
            loops["drain"] = self._drain_loop
        for name, loop in loops.items():  # each retries every error: see shared/liveness.py
            self.tasks.append(asyncio.create_task(for_good(f"click relay {name}", loop), name=name))

    async def stop(self) -> None:
        tasks, self.tasks = self.tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # What is still in the file goes out on the next start (of this or another process).
        await self.spool.close()
        await self._stop_producer()

    async def _flush_loop(self) -> None:
        while True:
            try:
                if await self.spool.flush():
                    self._wake.set()
                self.flush_error = None
            except Exception as exc:
                self.flush_error = f"{type(exc).__name__} {exc}".strip()
                log.exception("click spool: flush failed; the clicks stay buffered and are retried")
            await asyncio.sleep(self._flush_interval_s)

    async def measure_backlog(self) -> int:
        """Count the spool's rows for the backlog gauge; returns the count."""
        rows = await self.spool.count()
        self.spool.counted = rows
        return rows

    async def _backlog_loop(self) -> None:
        while True:
            try:
                await self.measure_backlog()
            except Exception as exc:
                log.warning("click spool: counting the backlog failed: %s", exc)
            await asyncio.sleep(BACKLOG_EVERY_S)

    async def _drain_loop(self) -> None:
        backoff = 0.2
        while True:
            try:
                sent = await self.drain_once()
                backoff = 0.2
            except Exception as exc:
                log.warning("click spool: publishing failed (%s); retrying in %.1fs", exc, backoff)
                await self._stop_producer()  # a fresh producer after an outage reconnects cleanly
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if sent < self._batch:
                self._wake.clear()
                # Woken by this process's flush; a relay process polls the file.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._idle_s)

    async def _producer_ready(self) -> EventProducer:
        if self._producer is None:
            producer = EventProducer(self._settings, client_id=f"{self._settings.service_name}-clicks")
            await producer.start()
            self._producer = producer
        return self._producer

    async def _stop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await producer.stop()
            except Exception as exc:
                log.warning("click spool: stopping the producer failed: %s", exc)

    async def drain_once(self) -> int:
        """Publish up to one batch; delete what the broker acknowledged. Raises if some was not."""
        rows = await self.spool.read(self._batch)
        if not rows:
            return 0
        await self._decide_unique([record for _, record in rows])
        producer = await self._producer_ready()
        # Clicks of one share continue that share's trace and go to one partition: publish them
        # as one ordered group; groups of different shares go out concurrently.
        groups: dict[str, list[tuple[int, ClickRecord]]] = {}
        for seq, record in rows:
            share_id = str(record.get("data", {}).get("share_id"))
            groups.setdefault(share_id, []).append((seq, record))
        results = await asyncio.gather(
            *(self._publish_group(producer, group) for group in groups.values()), return_exceptions=True
        )
        acked: list[int] = []
        errors: list[BaseException] = []
        for group, result in zip(groups.values(), results, strict=True):
            if isinstance(result, BaseException):
                errors.append(result)
            else:
                acked += [seq for seq, _ in group]
        await self.spool.delete(acked)
        self.published += len(acked)
        if errors:
            raise RuntimeError(
                f"{len(rows) - len(acked)} of {len(rows)} clicks not acknowledged: {errors[0]!r}"
            )
        return len(rows)

    async def _decide_unique(self, records: list[ClickRecord]) -> None:
        """Mark each click `unique` when it is its visitor's first on the share inside the
        window, against the visitors every replica has seen: one read for the batch, one write
        for the visitors none was seen of, then a write per window that ended, visitors in
        parallel and each visitor's clicks in order."""
        keyed = [r for r in records if r.get("seen")]
        if not keyed:
            return
        if self._seen is None:
            raise RuntimeError("a relay that drains the spool needs the visitors seen (seen=...)")
        by_visitor: dict[str, list[ClickRecord]] = {}
        for record in sorted(keyed, key=lambda r: float(r["time"])):
            by_visitor.setdefault(domain.seen_id(record["data"]["share_id"], record["seen"]), []).append(
                record
            )
        store = self._seen
        seen = await store.seen(list(by_visitor))
        new = [
            NewVisitor(
                clicks[0]["org"],
                key,
                domain.Seen(float(clicks[0]["time"]), clicks[0]["id"]),
                float(clicks[0]["window_s"]),
            )
            for key, clicks in by_visitor.items()
            if key not in seen
        ]
        if new:
            kept = await store.record_new(new)
            seen.update((v.seen_id, v.first) for v in new if v.seen_id in kept)
            # Kept by another relay meanwhile: theirs is the first click.
            if lost := [v.seen_id for v in new if v.seen_id not in kept]:
                seen.update(await store.seen(lost))

        async def decide(seen_id: str, clicks: list[ClickRecord]) -> None:
            first = seen.get(seen_id)
            for record in clicks:
                at, click_id, window_s = float(record["time"]), record["id"], float(record["window_s"])
                unique = domain.first_visit(first, click_id, at, window_s)
                if unique and (first is None or first.click_id != click_id):
                    click = domain.Seen(at, click_id)
                    unique = await store.record_first(record["org"], seen_id, click, window_s, first)
                    first = click if unique else (await store.seen([seen_id])).get(seen_id)
                record["data"]["unique"] = unique

        await asyncio.gather(*(decide(seen_id, clicks) for seen_id, clicks in by_visitor.items()))

    async def _publish_group(self, producer: EventProducer, group: list[tuple[int, ClickRecord]]) -> None:
        events: list[Event[Any]] = []
        links: list[Link] = []
        for _, record in group:
            try:
                events.append(click_event(record))
            except (KeyError, TypeError, ValueError) as exc:
                # Only this process writes the spool, so this is a bug; keep the row in the log
                # rather than blocking every click behind it.
                log.error("click spool: dropping a malformed row %r: %s", record, exc)
                continue
            link = request_span_link(record)
            if link is not None and len(links) < MAX_LINKS:
                links.append(link)
        if not events:
            return
        # The share's trace continues here: this span is a child of the context kept with the
        # share when it was made and links the visitors' request spans; the produce spans of the
        # click events are its children.
        with tracer.start_as_current_span(
            "record clicks",
            context=extract(group[0][1].get("trace")),
            kind=SpanKind.INTERNAL,
            links=links or None,
            attributes={"chorus.share_id": events[0].data.share_id, "chorus.clicks": len(events)},
        ):
            await producer.publish_many(events)
