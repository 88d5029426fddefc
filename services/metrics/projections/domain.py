"""Pure rules of the projections: what each event adds to which counters, and how a poll's events
fold into one update per document, exactly once.

No I/O here. Projections are counters kept per organisation, per day in the organisation's time
zone and per dimension value ("all", advocate, content, team, network, tag); each event turns
into an `Effect`: its counters and the dimension values it counts for. The store keeps two
documents per organisation and day: the day's totals ("all"), and the counters of every value of
every other dimension; so a poll's batch makes two updates per organisation and day it touches,
whatever its size, and the totals are read without the breakdowns (see store.py).

A poll is tallied (in a worker process, which knows no settings) by UTC quarter hour, the
`slot` of `utc_slot`: every time zone's days begin on one. The projector then folds the
quarter hours into the days of each organisation's zone (`zones.localized`), so a zone applies to the
events projected while it is set; `chorus rebuild metrics` counts all of history in the zone
set when it runs.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple, TypedDict

from shared.clock import SLOT_MINUTES, utc_slot
from shared.events.clicks import CountedClick
from shared.events.conversions import ApplicationSubmitted, Conversion, HireMade, SaleRecorded, SaleRefunded
from shared.events.shares import ShareMade
from shared.messaging.batch import Delivered, Reveal, as_revealed

# --- projection documents --------------------------------------------------------------------

ALL = "all"
DIMENSIONS = ("advocate", "content", "team", "network", "tag")
COUNTERS = (
    "shares",
    "reach",
    "clicks",
    "unique_clicks",
    "bot_clicks",
    "self_clicks",
    "leads",
    "sales",
    "refunds",
    "applications",
    "hires",
)
# Revenue is counted in ten-thousandths of the currency unit so that $inc stays exact integer maths
# (no ISO 4217 currency has more than 4 decimals).
MAX_AMOUNT_DECIMALS = 4
REVENUE_SCALE = Decimal(10) ** MAX_AMOUNT_DECIMALS


class Effect(NamedTuple):
    """What one event adds in one slot (the UTC quarter hour, `utc_slot`, when tallied from events;
    the day, once `localized`): the same counters to each dimension value it counts for.

    A tuple, so that hashing and comparing are cheap: a batch folds identical effects (the clicks
    of one share, say) into one multiplied effect instead of adding them up one by one.
    """

    org: str
    day: str
    dims: tuple[tuple[str, str], ...]  # (dimension, value); ("all", "*") first
    counters: tuple[tuple[str, int], ...]  # (counter name or "revenue.EUR", increment)


def stats_part(dim: str) -> str:
    """The part of a day's counters a dimension lives in: the totals, or the breakdowns."""
    return ALL if dim == ALL else "dims"


def stats_doc_id(org: str, day: str, part: str) -> str:
    return f"{org}|{day}|{part}"


def _dimension_values(
    advocate_id: str | None,
    content_id: str | None,
    team: str | None,
    network: str | None,
    tags: Iterable[str],
) -> tuple[tuple[str, str], ...]:
    values: list[tuple[str, str]] = [(ALL, "*")]
    if advocate_id:
        values.append(("advocate", advocate_id))
    if content_id:
        values.append(("content", content_id))
    if team:
        values.append(("team", team))
    if network:
        values.append(("network", network))
    values.extend(("tag", tag) for tag in sorted(set(tags)))
    return tuple(values)


def share_effect(org: str, share: ShareMade) -> Effect:
    dims = _dimension_values(share.advocate_id, share.content_id, share.team, share.network, share.tags)
    counters = (("shares", 1), ("reach", max(share.audience_size, 0)))
    return Effect(org, utc_slot(share.shared_at), dims, counters)


def click_counters(click: CountedClick) -> tuple[tuple[str, int], ...]:
    """Bot and self clicks are counted apart and never in the headline `clicks`."""
    if click.bot:
        return (("bot_clicks", 1),)
    if click.self_click:
        return (("self_clicks", 1),)
    return (("clicks", 1), ("unique_clicks", 1)) if click.unique else (("clicks", 1),)


def click_effect(org: str, click: CountedClick) -> Effect:
    # Without the advocate's tracking consent a click counts for everything but them.
    advocate = click.advocate_id if click.tracked else None
    dims = _dimension_values(advocate, click.content_id, click.team, click.network, click.tags)
    return Effect(org, utc_slot(click.clicked_at), dims, click_counters(click))


def conversion_effect(org: str, conversion: Conversion) -> Effect:
    counters: tuple[tuple[str, int], ...]
    if isinstance(conversion, SaleRecorded):
        units = int(Decimal(conversion.amount) * REVENUE_SCALE)
        counters = (("sales", 1), (f"revenue.{conversion.currency}", units))
    elif isinstance(conversion, SaleRefunded):
        # Revenue is net of refunds, counted on the day of the refund; what was refunded is kept too.
        units = int(Decimal(conversion.amount) * REVENUE_SCALE)
        currency = conversion.currency
        counters = (("refunds", 1), (f"revenue.{currency}", -units), (f"refunded.{currency}", units))
    elif isinstance(conversion, ApplicationSubmitted):
        counters = (("applications", 1),)
    elif isinstance(conversion, HireMade):
        counters = (("hires", 1),)
    else:
        counters = (("leads", 1),)
    if conversion.attributed:
        dims = _dimension_values(
            conversion.advocate_id,
            conversion.content_id,
            conversion.team,
            conversion.network,
            conversion.tags,
        )
    else:
        dims = ((ALL, "*"),)
    return Effect(org, utc_slot(conversion.converted_at), dims, counters)


def effect_of(org: str, data: ShareMade | CountedClick | Conversion) -> Effect:
    if isinstance(data, ShareMade):
        return share_effect(org, data)
    if isinstance(data, CountedClick):
        return click_effect(org, data)
    return conversion_effect(org, data)


def without_advocates(effect: Effect, erased: frozenset[str]) -> Effect:
    """The effect of an erased advocate's event: it still counts in the totals and in the other
    breakdowns, under no advocate."""
    if not any(dim == "advocate" and value in erased for dim, value in effect.dims):
        return effect
    return effect._replace(dims=tuple(d for d in effect.dims if not (d[0] == "advocate" and d[1] in erased)))


def source_of(topic: str, partition: int) -> str:
    """The name a document's watermark for one topic partition goes by: a segment of the path
    `wm.<source>`, so without the dots topic names have (paths split on them)."""
    return f"{topic.replace('.', '_')}_{partition}"


NOTHING = -1  # a run's record that counts for nothing: a repeat of an event already in the poll


@dataclass
class Run:
    """The records of one source (topic partition) that touch one organisation-day, in offset
    order: which of the day's effects each one has, and its event id. Columns, so that a poll's
    tally crosses a process boundary cheaply."""

    offsets: array[int] = field(default_factory=lambda: array("q"))
    effects: array[int] = field(default_factory=lambda: array("i"))  # index into DayTally.effects
    event_ids: list[str] = field(default_factory=list)


@dataclass
class DayTally:
    """A poll's effects on one organisation-day: its distinct effects, how many records have
    each, and the records per source (for documents that have applied some of them already)."""

    org: str
    day: str
    effects: list[Effect] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    runs: dict[str, Run] = field(default_factory=dict)


@dataclass
class Tally:
    """A poll (or any batch) of projected events, folded: per organisation-day, and the latest
    share of each advocate. What the projector's worker process hands back for a poll."""

    days: dict[tuple[str, str], DayTally] = field(default_factory=dict)
    last_share: dict[tuple[str, str], datetime] = field(default_factory=dict)  # (org, advocate) -> at

    def advocates(self) -> set[tuple[str, str]]:
        return {
            (day.org, value)
            for day in self.days.values()
            for effect in day.effects
            for dim, value in effect.dims
            if dim == "advocate"
        }

    def without_advocates(self, erased: set[tuple[str, str]]) -> None:
        """Take erased advocates out of the breakdowns (their events still count elsewhere)."""
        if not erased:
            return
        by_org: dict[str, frozenset[str]] = {}
        for org, advocate in erased:
            by_org[org] = by_org.get(org, frozenset()) | {advocate}
        for day in self.days.values():
            if day.org in by_org:
                day.effects = [without_advocates(e, by_org[day.org]) for e in day.effects]
        self.last_share = {pair: at for pair, at in self.last_share.items() if pair not in erased}


class Tallying:
    """Builds a Tally record by record (and keeps what it needs for that out of the Tally, which
    crosses a process boundary)."""

    def __init__(self) -> None:
        self.tally = Tally()
        self._slots: dict[Effect, tuple[DayTally, int]] = {}
        self._ids: set[str] = set()

    def slot(self, effect: Effect) -> tuple[DayTally, int]:
        """Where an effect is counted (its day, and its index there)."""
        found = self._slots.get(effect)
        if found is None:
            days = self.tally.days
            day = days.get((effect.org, effect.day))
            if day is None:
                day = days[(effect.org, effect.day)] = DayTally(effect.org, effect.day)
            day.effects.append(effect)
            day.counts.append(0)
            found = self._slots[effect] = (day, len(day.effects) - 1)
        return found

    def add(self, slot: tuple[DayTally, int], source: str, offset: int, event_id: str) -> None:
        """One record (each source's in offset order). An event id seen before in this tally (a
        producer's retry) counts once; its record still moves the watermark."""
        day, index = slot
        if event_id in self._ids:
            index = NOTHING
        else:
            self._ids.add(event_id)
            day.counts[index] += 1
        run = day.runs.get(source)
        if run is None:
            run = day.runs[source] = Run()
        run.offsets.append(offset)
        run.effects.append(index)
        run.event_ids.append(event_id)


def tally_events(topic: str, items: Iterable[Delivered], reveal: Reveal = as_revealed) -> Tally:
    """A batch of `topic`'s projected events (shares, clicks, conversions), folded. Pure, and run
    in the projector's worker process (Subscription.on_tally): one pass, an effect built once per
    distinct click shape (most clicks of a poll repeat a few), a share or a conversion its own.
    From a worker, the events come sealed: a click's shape is its sealed advocate and team (one
    person's team seals to one value), revealed once for its effect."""
    tallying = Tallying()
    last_share = tallying.tally.last_share
    slots: dict[Hashable, tuple[DayTally, int]] = {}
    sources: dict[int, str] = {}  # partition -> its watermark's name
    for item in items:
        event = item.event
        org, data = event.tenant, event.data
        key: Hashable
        if isinstance(data, CountedClick):
            clicked_at = data.clicked_at
            key = (
                org,
                # Its quarter hour, cheaply (timestamp() would cost more than the rest of the
                # key): one offset's wall-clock quarter hour is one UTC quarter hour, since every
                # offset is a multiple of a quarter hour.
                clicked_at.date(),
                clicked_at.hour,
                clicked_at.minute // SLOT_MINUTES,
                clicked_at.tzinfo,
                data.advocate_id,
                data.content_id,
                data.team,
                data.network,
                tuple(data.tags),
                data.bot,
                data.self_click,
                data.unique,
                data.tracked,
            )
        elif isinstance(data, ShareMade | Conversion):
            key = event.id
            data = reveal(org, data)
            if isinstance(data, ShareMade):
                pair = (org, data.advocate_id)
                last_share[pair] = max(last_share.get(pair, data.shared_at), data.shared_at)
        else:
            continue
        slot = slots.get(key)
        if slot is None:
            if isinstance(data, CountedClick):  # a share or a conversion was revealed above
                data = reveal(org, data)
            slot = slots[key] = tallying.slot(effect_of(org, data))
        source = sources.get(item.partition)
        if source is None:
            source = sources[item.partition] = source_of(topic, item.partition)
        tallying.add(slot, source, item.offset, event.id)
    return tallying.tally


@dataclass
class DocUpdate:
    """The sum of a batch's effects on one document (an organisation-day's part), per dimension
    and value, and the offsets it covers per source. The document keeps, per source, the highest
    offset it has applied (`wm.<source>`); the update moves them with the counters, atomically."""

    doc_id: str
    meta: dict[str, str]
    counters: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # dim -> key -> name -> +n
    offsets: dict[str, tuple[int, int]] = field(default_factory=dict)  # source -> (first, last)
    event_ids: list[str] = field(default_factory=list)

    def add(self, effect: Effect, part: str, times: int = 1) -> None:
        for dim, key in effect.dims:
            if stats_part(dim) != part:
                continue
            counters = self.counters.setdefault(dim, {}).setdefault(key, {})
            for name, value in effect.counters:
                counters[name] = counters.get(name, 0) + value * times


def fold(
    day: DayTally,
    part: str,
    watermarks: Mapping[str, int],
    applied_ids: frozenset[str] | None = None,
) -> DocUpdate | None:
    """Sum an organisation-day's effects on one `part` of its counters: the records above their
    source's watermark (none: -1) and, when `applied_ids` is given, whose event was not applied
    already (by id).

    Usually every record lies above (the document has not seen this poll): the day's counts are
    used as they are. Otherwise (a redelivery after a crash or a rebalance, a replay) the records
    are counted again from the first one above each watermark.
    """
    starts = {
        source: bisect_right(run.offsets, watermarks.get(source, -1)) for source, run in day.runs.items()
    }
    live = {source: start for source, start in starts.items() if start < len(day.runs[source].offsets)}
    if not live:
        return None
    update = DocUpdate(stats_doc_id(day.org, day.day, part), {"org": day.org, "day": day.day, "part": part})
    counts = day.counts
    if applied_ids is not None or any(start > 0 for start in live.values()):
        counts = [0] * len(day.effects)
        for source, start in live.items():
            run = day.runs[source]
            for i in range(start, len(run.offsets)):
                index = run.effects[i]
                if index != NOTHING and (applied_ids is None or run.event_ids[i] not in applied_ids):
                    counts[index] += 1
                    if applied_ids is not None:
                        update.event_ids.append(run.event_ids[i])
    for effect, times in zip(day.effects, counts, strict=True):
        if times:
            update.add(effect, part, times)
    for source, start in live.items():
        offsets = day.runs[source].offsets
        update.offsets[source] = (offsets[start], offsets[-1])
    return update if update.counters else None


# --- entities projected from events --------------------------------------------------------------


@dataclass(frozen=True)
class Click:
    """A click kept for attribution (no IP, no user agent: only the visitor hash). `trace` is the
    click event's W3C trace context: the lead or sale that names this click continues that trace,
    so one trace runs from the share to the conversion."""

    click_id: str
    org: str
    share_id: str
    advocate_id: str
    content_id: str
    network: str | None
    team: str | None
    tags: list[str]
    clicked_at: datetime
    visitor_hash: str | None
    bot: bool
    self_click: bool
    trace: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None  # clicks indexed before it was kept lack it
    tracked: bool = True  # False: the advocate had withdrawn tracking consent


@dataclass(frozen=True)
class AdvocateActivity:
    """An enrolled advocate as the program report counts them."""

    advocate_id: str
    team: str | None
    last_shared_at: datetime | None
    trained: bool
    tracking_consent: bool = True


class StatsRow(TypedDict, total=False):
    """Counters of one dimension value on one day, from one stats document (readers sum them)."""

    day: str
    key: str
    shares: int
    reach: int
    clicks: int
    unique_clicks: int
    bot_clicks: int
    self_clicks: int
    leads: int
    sales: int
    refunds: int
    applications: int
    hires: int
    revenue: dict[str, int]  # per currency, net of refunds, in ten-thousandths (REVENUE_SCALE)
    refunded: dict[str, int]  # per currency, in ten-thousandths
