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
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, NamedTuple

from iso4217 import Currency

from shared.errors import InvalidInput
from shared.events.clicks import CountedClick
from shared.events.conversions import Conversion, SaleRecorded
from shared.events.shares import ShareMade

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
    erased: frozenset[str],
) -> tuple[tuple[str, str], ...]:
    values: list[tuple[str, str]] = [(ALL, "*")]
    if advocate_id and advocate_id not in erased:
        values.append(("advocate", advocate_id))
    if content_id:
        values.append(("content", content_id))
    if team:
        values.append(("team", team))
    if network:
        values.append(("network", network))
    values.extend(("tag", tag) for tag in sorted(set(tags)))
    return tuple(values)


def share_effect(org: str, share: ShareMade, erased: frozenset[str] = frozenset()) -> Effect:
    dims = _dimension_values(
        share.advocate_id, share.content_id, share.team, share.network, share.tags, erased
    )
    counters = (("shares", 1), ("reach", max(share.audience_size, 0)))
    return Effect(org, share.shared_at.date().isoformat(), dims, counters)


def click_counters(click: CountedClick) -> tuple[tuple[str, int], ...]:
    """Bot and self clicks are counted apart and never in the headline `clicks`."""
    if click.bot:
        return (("bot_clicks", 1),)
    if click.self_click:
        return (("self_clicks", 1),)
    return (("clicks", 1), ("unique_clicks", 1)) if click.unique else (("clicks", 1),)


def click_effect(org: str, click: CountedClick, erased: frozenset[str] = frozenset()) -> Effect:
    dims = _dimension_values(
        click.advocate_id, click.content_id, click.team, click.network, click.tags, erased
    )
    return Effect(org, click.clicked_at.date().isoformat(), dims, click_counters(click))


def conversion_effect(org: str, conversion: Conversion, erased: frozenset[str] = frozenset()) -> Effect:
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
            erased,
        )
    else:
        dims = ((ALL, "*"),)
    return Effect(org, conversion.converted_at.date().isoformat(), dims, counters)


def effect_of(org: str, data: ShareMade | CountedClick | Conversion, erased: frozenset[str]) -> Effect:
    if isinstance(data, ShareMade):
        return share_effect(org, data, erased)
    if isinstance(data, CountedClick):
        return click_effect(org, data, erased)
    return conversion_effect(org, data, erased)


def source_of(topic: str, partition: int) -> str:
    """The name a document's watermark for one topic partition goes by (FerretDB refuses dots
    in field names, topic names have them)."""
    return f"{topic.replace('.', '_')}_{partition}"


class Pending(NamedTuple):
    """An event's effect with the record it came from, as a batch projector sees it. (A tuple:
    a poll makes tens of thousands.)"""

    effect: Effect
    source: str  # the topic and partition of the record (a watermark per source)
    offset: int
    event_id: str


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
    pending: Sequence[Pending],
    part: str,
    watermarks: Mapping[str, int],
    applied_ids: frozenset[str] | None = None,
) -> DocUpdate | None:
    """Sum the effects of one organisation-day's events on one `part` of its counters: those
    above their source's watermark (none: -1) and, when `applied_ids` is given, whose event was
    not applied already (by id). The same event id at two offsets counts once. `pending` is of
    one organisation and day, each source's records in offset order.
    """
    live = [p for p in pending if p.offset > watermarks.get(p.source, -1)]
    if applied_ids is not None or len({p.event_id for p in live}) < len(live):
        seen = set(applied_ids or ())
        unique: list[Pending] = []
        for p in live:
            if p.event_id not in seen:
                seen.add(p.event_id)
                unique.append(p)
        live = unique
    if not live:
        return None
    first = live[0].effect
    update = DocUpdate(
        stats_doc_id(first.org, first.day, part), {"org": first.org, "day": first.day, "part": part}
    )
    # Identical effects (the clicks of one share, say) are added once, multiplied.
    for effect, times in Counter(p.effect for p in live).items():
        update.add(effect, part, times)
    for p in live:
        first_offset = update.offsets.get(p.source, (p.offset, p.offset))[0]
        update.offsets[p.source] = (first_offset, p.offset)
    if applied_ids is not None:
        update.event_ids = [p.event_id for p in live]
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
