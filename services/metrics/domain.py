"""Pure rules of the metrics service: what each event adds to which projection, the derived
figures (CTR, conversion rate, EMV), attribution credit, goal forecasts and survey scores.

No I/O here. Projections are counters kept per organisation, per UTC day and per dimension
value ("all", advocate, content, team, network, tag); each event turns into an `Effect`: its
counters and the dimension values it counts for. The store keeps two documents per organisation
and day: the day's totals ("all"), and the counters of every value of every other dimension; so
a poll's batch makes two updates per organisation and day it touches, whatever its size, and the
totals are read without the breakdowns (see store.py).
"""

from __future__ import annotations

import csv
import io
import re
from array import array
from bisect import bisect_right
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, NamedTuple

from iso4217 import Currency

from shared.errors import InvalidInput
from shared.events.clicks import CountedClick
from shared.events.conversions import Conversion, SaleRecorded
from shared.events.shares import ShareMade
from shared.messaging.batch import Delivered

# --- projection documents --------------------------------------------------------------------

ALL = "all"
DIMENSIONS = ("advocate", "content", "team", "network", "tag")
TIME_GROUPS = ("day", "week", "month")
GROUP_BYS = TIME_GROUPS + DIMENSIONS
COUNTERS = ("shares", "reach", "clicks", "unique_clicks", "bot_clicks", "self_clicks", "leads", "sales")
# Revenue is counted in ten-thousandths of the currency unit so that $inc stays exact integer maths
# (no ISO 4217 currency has more than 4 decimals).
MAX_AMOUNT_DECIMALS = 4
REVENUE_SCALE = Decimal(10) ** MAX_AMOUNT_DECIMALS
CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}$")


class Effect(NamedTuple):
    """What one event adds on one day: the same counters to each dimension value it counts for.

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
    return Effect(org, share.shared_at.date().isoformat(), dims, counters)


def click_counters(click: CountedClick) -> tuple[tuple[str, int], ...]:
    """Bot and self clicks are counted apart and never in the headline `clicks`."""
    if click.bot:
        return (("bot_clicks", 1),)
    if click.self_click:
        return (("self_clicks", 1),)
    return (("clicks", 1), ("unique_clicks", 1)) if click.unique else (("clicks", 1),)


def click_effect(org: str, click: CountedClick) -> Effect:
    dims = _dimension_values(click.advocate_id, click.content_id, click.team, click.network, click.tags)
    return Effect(org, click.clicked_at.date().isoformat(), dims, click_counters(click))


def conversion_effect(org: str, conversion: Conversion) -> Effect:
    counters: tuple[tuple[str, int], ...]
    if isinstance(conversion, SaleRecorded):
        units = int(Decimal(conversion.amount) * REVENUE_SCALE)
        counters = (("sales", 1), (f"revenue.{conversion.currency}", units))
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
    return Effect(org, conversion.converted_at.date().isoformat(), dims, counters)


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


def tally_events(topic: str, items: Iterable[Delivered]) -> Tally:
    """A batch of `topic`'s projected events (shares, clicks, conversions), folded. Pure, and run
    in the projector's worker process (Subscription.on_tally): one pass, an effect built once per
    distinct click shape (most clicks of a poll repeat a few), a share or a conversion its own."""
    tallying = Tallying()
    last_share = tallying.tally.last_share
    slots: dict[Hashable, tuple[DayTally, int]] = {}
    sources: dict[int, str] = {}  # partition -> its watermark's name
    for item in items:
        event = item.event
        org, data = event.tenant, event.data
        key: Hashable
        if isinstance(data, CountedClick):
            key = (
                org,
                data.clicked_at.date(),
                data.advocate_id,
                data.content_id,
                data.team,
                data.network,
                tuple(data.tags),
                data.bot,
                data.self_click,
                data.unique,
            )
        elif isinstance(data, ShareMade | Conversion):
            key = event.id
            if isinstance(data, ShareMade):
                pair = (org, data.advocate_id)
                last_share[pair] = max(last_share.get(pair, data.shared_at), data.shared_at)
        else:
            continue
        slot = slots.get(key)
        if slot is None:
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


# --- reading projections -----------------------------------------------------------------------


@dataclass(frozen=True)
class EmvRates:
    cpc: Decimal = Decimal(0)
    cpm: Decimal = Decimal(0)
    currency: str = "USD"

    def formula(self) -> str:
        return (
            f"emv = clicks x CPC + reach / 1000 x CPM = clicks x {self.cpc} + reach / 1000 x {self.cpm}"
            f" ({self.currency})"
        )


@dataclass
class Totals:
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    revenue_units: dict[str, int] = field(default_factory=dict)

    def add_doc(self, doc: dict[str, Any]) -> None:
        for name in COUNTERS:
            self.counters[name] += int(doc.get(name, 0))
        for currency, units in (doc.get("revenue") or {}).items():
            self.revenue_units[currency] = self.revenue_units.get(currency, 0) + int(units)

    def row(self, key: str, rates: EmvRates) -> dict[str, Any]:
        c = self.counters
        ctr = c["unique_clicks"] / c["reach"] if c["reach"] else 0.0
        conversion_rate = c["leads"] / c["unique_clicks"] if c["unique_clicks"] else 0.0
        emv = Decimal(c["clicks"]) * rates.cpc + Decimal(c["reach"]) / 1000 * rates.cpm
        return {
            "key": key,
            **c,
            "revenue": {cur: format_units(units) for cur, units in sorted(self.revenue_units.items())},
            "ctr": round(ctr, 6),
            "conversion_rate": round(conversion_rate, 6),
            "emv": float(emv.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)),
        }


def format_units(units: int) -> str:
    """Revenue units as a decimal string: two decimals, or four when the cents do not suffice."""
    amount = Decimal(units) / REVENUE_SCALE
    return str(amount.quantize(Decimal("0.01")) if units % 100 == 0 else amount.quantize(Decimal("0.0001")))


def period_key(day: str, group_by: str) -> str:
    """The label of the period a day falls in: the day, the Monday of its ISO week, or YYYY-MM."""
    d = date.fromisoformat(day)
    if group_by == "week":
        return (d - timedelta(days=d.weekday())).isoformat()
    if group_by == "month":
        return d.strftime("%Y-%m")
    return day


def group_rows(docs: Iterable[dict[str, Any]], group_by: str, rates: EmvRates) -> list[dict[str, Any]]:
    groups: dict[str, Totals] = {}
    for doc in docs:
        label = period_key(doc["day"], group_by) if group_by in TIME_GROUPS else doc["key"]
        groups.setdefault(label, Totals()).add_doc(doc)
    return [groups[label].row(label, rates) for label in sorted(groups)]


def days_between(start: date, end: date) -> list[str]:
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


# --- conversions ------------------------------------------------------------------------------


def parse_currency(raw: str | None) -> str:
    """An ISO 4217 code a sale can be paid in: not one without minor units defined (no currency,
    testing, precious metals, SDRs)."""
    if raw is None or not CURRENCY_PATTERN.match(raw):
        raise InvalidInput.field("currency", "must be an ISO 4217 code of three capital letters, e.g. EUR")
    try:
        minor_units = Currency(raw).exponent
    except ValueError:
        raise InvalidInput.field("currency", f"{raw} is not an ISO 4217 currency code") from None
    if minor_units is None:
        raise InvalidInput.field("currency", f"{raw} is not a currency a sale can be paid in")
    return raw


def minor_units(currency: str) -> int:
    """Decimals of the currency's minor unit (2 for EUR, 0 for JPY, 3 for KWD)."""
    return Currency(currency).exponent or 0


def parse_amount(raw: str | None, currency: str) -> Decimal:
    """A positive amount in `currency` (see parse_currency), with no more decimals than its minor
    unit has."""
    if raw is None:
        raise InvalidInput.field("amount", "a sale needs an amount")
    try:
        amount = Decimal(raw)
    except InvalidOperation:
        raise InvalidInput.field("amount", "must be a decimal number such as '129.90'") from None
    if not amount.is_finite() or amount <= 0:
        raise InvalidInput.field("amount", "must be greater than zero")
    exponent = amount.normalize().as_tuple().exponent
    decimals = minor_units(currency)
    if isinstance(exponent, int) and -exponent > decimals:
        raise InvalidInput.field("amount", f"may have at most {decimals} decimals in {currency}")
    if amount >= Decimal(10) ** 12:
        raise InvalidInput.field("amount", "is too large")
    return amount


@dataclass(frozen=True)
class Touch:
    """A click that reached the customer."""

    click_id: str
    advocate_id: str
    share_id: str
    clicked_at: datetime


def credit_split(touches: Sequence[Touch]) -> list[dict[str, Any]]:
    """Last touch: 1.0 to the advocate of the latest click. Linear: equal parts per advocate."""
    if not touches:
        return []
    latest_by_advocate: dict[str, Touch] = {}
    for t in sorted(touches, key=lambda t: t.clicked_at):
        latest_by_advocate[t.advocate_id] = t
    last = max(latest_by_advocate.values(), key=lambda t: t.clicked_at)
    share = 1.0 / len(latest_by_advocate)
    return [
        {
            "advocate_id": t.advocate_id,
            "share_id": t.share_id,
            "last_touch": 1.0 if t.advocate_id == last.advocate_id else 0.0,
            "linear": round(share, 6),
        }
        for t in sorted(latest_by_advocate.values(), key=lambda t: t.advocate_id)
    ]


# --- goals ------------------------------------------------------------------------------------

ON_TRACK, AT_RISK, BEHIND, ACHIEVED = "on_track", "at_risk", "behind", "achieved"
AT_RISK_FROM = 0.8  # a forecast within 80% of the target is "at risk", below that "behind"
RATIO_METRICS = ("ctr", "conversion_rate", "active_ratio", "training_completion", "nps", "average")


def add_months(start: date, months: int) -> date:
    month0 = start.month - 1 + months
    year, month = start.year + month0 // 12, month0 % 12 + 1
    for day in (start.day, 30, 29, 28):
        try:
            return date(year, month, day)
        except ValueError:
            continue
    raise ValueError("unreachable")


@dataclass(frozen=True)
class GoalProgress:
    value: float
    progress: float  # value / target
    forecast: float
    status: str


def goal_progress(
    *, cumulative: bool, value: float, target: float, starts_on: date, ends_on: date, today: date
) -> GoalProgress:
    """A linear forecast: a cumulative metric keeps its pace to the end; a ratio stays where it is."""
    total_days = (ends_on - starts_on).days + 1
    elapsed = min(max((today - starts_on).days + 1, 1), total_days)
    forecast = value * total_days / elapsed if cumulative else value
    progress = value / target if target else 1.0
    if value >= target:
        status = ACHIEVED
    elif forecast >= target:
        status = ON_TRACK
    elif forecast >= AT_RISK_FROM * target:
        status = AT_RISK
    else:
        status = BEHIND
    return GoalProgress(round(value, 6), round(progress, 6), round(forecast, 6), status)


# --- surveys ----------------------------------------------------------------------------------


def nps(scores: Sequence[int]) -> float | None:
    """Promoters (9-10) minus detractors (0-6), in percent of all answers."""
    if not scores:
        return None
    promoters = sum(1 for s in scores if s >= 9)
    detractors = sum(1 for s in scores if s <= 6)
    return round(100.0 * (promoters - detractors) / len(scores), 2)


def average(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


# --- CSV --------------------------------------------------------------------------------------


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """Flat CSV of report rows; a dict cell (revenue per currency) becomes one column per key."""
    flat: list[dict[str, Any]] = []
    columns: list[str] = []
    for row in rows:
        out: dict[str, Any] = {}
        for name, value in row.items():
            if isinstance(value, dict):
                for sub, sub_value in value.items():
                    out[f"{name}_{sub}"] = sub_value
            elif isinstance(value, list):
                out[name] = ";".join(str(v) for v in value)
            else:
                out[name] = value
        for name in out:
            if name not in columns:
                columns.append(name)
        flat.append(out)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    return buffer.getvalue()
