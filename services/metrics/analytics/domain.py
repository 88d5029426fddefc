"""Rules of the analytics reports: which projection rows answer a query, how rows sum and group
into periods, the derived figures (CTR, conversion rate, EMV), trends and the program's ratios,
and the dictionary of every metric."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from services.metrics.org_settings.domain import EmvRates
from services.metrics.projections.domain import (
    ALL,
    COUNTERS,
    DIMENSIONS,
    REVENUE_SCALE,
    AdvocateActivity,
    StatsRow,
)
from shared.errors import InvalidInput

TIME_GROUPS = ("day", "week", "month")
REVENUE_METRIC = re.compile(r"revenue\.[A-Z]{3}")
GROUP_BYS = TIME_GROUPS + DIMENSIONS
SINGLE_VALUED = ("advocate", "content", "team", "network")  # every event has at most one
MAX_RANGE_DAYS = 731
FUNNEL_METRICS = (*COUNTERS, "ctr", "conversion_rate", "application_rate", "emv")
MY_FIGURES = ("reach", "shares", "clicks", "unique_clicks", "leads", "sales")

DICTIONARY: list[dict[str, str]] = [
    {
        "name": "shares",
        "definition": "links shared by advocates",
        "formula": "count(share.made)",
        "unit": "count",
    },
    {
        "name": "reach",
        "definition": "potential reach: the audience of each share's network at share time",
        "formula": "sum(share.audience_size)",
        "unit": "people",
    },
    {
        "name": "clicks",
        "definition": "clicks by people, without bot clicks and the advocate's own clicks; a click on the"
        " link of an advocate who withdrew tracking consent counts here but not in that advocate's figures",
        "formula": "count(click where not bot and not self)",
        "unit": "count",
    },
    {
        "name": "unique_clicks",
        "definition": "clicks by distinct visitors within the organisation's unique-click window, decided"
        " by sharing when the click is recorded, the same for every replica and across midnight",
        "formula": "count(click where unique and not bot and not self)",
        "unit": "count",
    },
    {
        "name": "bot_clicks",
        "definition": "clicks from bots and link previewers (never in headline figures)",
        "formula": "count(click where bot)",
        "unit": "count",
    },
    {
        "name": "self_clicks",
        "definition": "advocates clicking their own links (never in headline figures)",
        "formula": "count(click where self and not bot)",
        "unit": "count",
    },
    {
        "name": "leads",
        "definition": "leads reported through the conversions API, one per customer",
        "formula": "count(distinct customer with a lead)",
        "unit": "count",
    },
    {
        "name": "sales",
        "definition": "sales reported through the conversions API, one per customer and order",
        "formula": "count(distinct (customer, order) with a sale)",
        "unit": "count",
    },
    {
        "name": "applications",
        "definition": "job applications reported through the conversions API, one per candidate; each"
        " credited to a click on a job opening",
        "formula": "count(distinct candidate with an application)",
        "unit": "count",
    },
    {
        "name": "hires",
        "definition": "hires reported through the conversions API, one per candidate, credited through"
        " the candidate's application",
        "formula": "count(distinct candidate with a hire)",
        "unit": "count",
    },
    {
        "name": "refunds",
        "definition": "refunds reported through the conversions API (each counts, on the day it is reported)",
        "formula": "count(sale.refunded)",
        "unit": "count",
    },
    {
        "name": "revenue",
        "definition": "amount of the sales less their refunds, per ISO 4217 currency; a time series takes"
        " one currency as metric revenue.<currency>",
        "formula": "sum(sale.amount) - sum(refund.amount) per currency",
        "unit": "currency",
    },
    {
        "name": "refunded",
        "definition": "amount given back by refunds, per ISO 4217 currency",
        "formula": "sum(refund.amount) per currency",
        "unit": "currency",
    },
    {"name": "ctr", "definition": "click-through rate", "formula": "unique_clicks / reach", "unit": "ratio"},
    {
        "name": "conversion_rate",
        "definition": "leads per unique click",
        "formula": "leads / unique_clicks",
        "unit": "ratio",
    },
    {
        "name": "application_rate",
        "definition": "job applications per unique click",
        "formula": "applications / unique_clicks",
        "unit": "ratio",
    },
    {
        "name": "emv",
        "definition": "earned media value from the organisation's CPC and CPM",
        "formula": "clicks x CPC + reach / 1000 x CPM",
        "unit": "currency of the settings",
    },
    {
        "name": "active_ratio",
        "definition": "enrolled advocates who shared in the last 30 days",
        "formula": "active advocates / enrolled advocates",
        "unit": "ratio",
    },
    {
        "name": "training_completion",
        "definition": "enrolled advocates who completed at least one course",
        "formula": "trained advocates / enrolled advocates",
        "unit": "ratio",
    },
    {
        "name": "nps",
        "definition": "net promoter score of a survey's 0-10 question (eNPS for employees)",
        "formula": "100 x (promoters(9-10) - detractors(0-6)) / answers",
        "unit": "score -100..100",
    },
    {
        "name": "average",
        "definition": "average of a survey's 1-5 rating question",
        "formula": "sum(rating) / answers",
        "unit": "1..5",
    },
]


def parse_day_range(from_: date, to: date) -> tuple[str, str]:
    if to < from_:
        raise InvalidInput.field("to", "must not be before 'from'")
    if (to - from_).days > MAX_RANGE_DAYS:
        raise InvalidInput.field("to", f"the range may span at most {MAX_RANGE_DAYS} days")
    return from_.isoformat(), to.isoformat()


def scope(group_by: str, filters: dict[str, str]) -> tuple[str, list[str] | None]:
    """Which projection rows answer a query: (dimension, keys)."""
    if group_by not in GROUP_BYS:
        raise InvalidInput.field("group_by", f"must be one of {', '.join(GROUP_BYS)}")
    if len(filters) > 1:
        raise InvalidInput.field("filters", "give at most one of advocate, content, team, network, tag")
    if group_by in TIME_GROUPS:
        if filters:
            dim, key = next(iter(filters.items()))
            return dim, [key]
        return ALL, None
    if filters and group_by not in filters:
        raise InvalidInput.field("filters", f"with group_by={group_by} only a {group_by} filter can be given")
    return group_by, [filters[group_by]] if filters else None


def unassigned(group_by: str, filters: dict[str, str], totals: Totals, rows: Totals) -> Totals | None:
    """What the totals hold and no row of a breakdown does: sales credited to no share, the
    figures of advocates with no team or of erased advocates (their events count, for nobody).
    Only where each event has one value of the dimension, so that the totals less the rows is
    exact: not over tags (they overlap), not over time, not when a filter picks the rows."""
    if filters or group_by not in SINGLE_VALUED:
        return None
    return totals.less(rows)


def totals_from_rows(group_by: str, filters: dict[str, str]) -> bool:
    """Whether a funnel's totals are the sum of its rows. Tags overlap (a share may carry
    several), so totals over a dimension's breakdown come from the un-split totals instead."""
    return bool(filters) or group_by in TIME_GROUPS


def check_timeseries(metric: str, interval: str) -> None:
    if interval not in TIME_GROUPS:
        raise InvalidInput.field("interval", "must be day, week or month")
    if metric not in FUNNEL_METRICS and not REVENUE_METRIC.fullmatch(metric):
        raise InvalidInput.field(
            "metric", "must be a funnel metric or revenue.<ISO 4217 code> (see /v1/metrics/dictionary)"
        )


def metric_value(row: Mapping[str, Any], metric: str) -> float:
    """A row's value of a funnel metric, or of revenue in one currency (`revenue.EUR`)."""
    if REVENUE_METRIC.fullmatch(metric):
        return float(row["revenue"].get(metric.removeprefix("revenue."), 0))
    return float(row[metric])


@dataclass
class Totals:
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    revenue_units: dict[str, int] = field(default_factory=dict)
    refunded_units: dict[str, int] = field(default_factory=dict)

    def add_doc(self, doc: Mapping[str, Any]) -> None:
        for name in COUNTERS:
            self.counters[name] += int(doc.get(name, 0))
        for amounts, units_by_currency in (
            (doc.get("revenue"), self.revenue_units),
            (doc.get("refunded"), self.refunded_units),
        ):
            for currency, units in (amounts or {}).items():
                units_by_currency[currency] = units_by_currency.get(currency, 0) + int(units)

    def less(self, other: Totals) -> Totals:
        def units_less(mine: dict[str, int], theirs: dict[str, int]) -> dict[str, int]:
            left = {cur: mine.get(cur, 0) - theirs.get(cur, 0) for cur in mine.keys() | theirs.keys()}
            return {cur: units for cur, units in left.items() if units}

        return Totals(
            {name: count - other.counters[name] for name, count in self.counters.items()},
            units_less(self.revenue_units, other.revenue_units),
            units_less(self.refunded_units, other.refunded_units),
        )

    def row(self, key: str, rates: EmvRates) -> dict[str, Any]:
        c = self.counters
        ctr = c["unique_clicks"] / c["reach"] if c["reach"] else 0.0
        conversion_rate = c["leads"] / c["unique_clicks"] if c["unique_clicks"] else 0.0
        application_rate = c["applications"] / c["unique_clicks"] if c["unique_clicks"] else 0.0
        emv = Decimal(c["clicks"]) * rates.cpc + Decimal(c["reach"]) / 1000 * rates.cpm
        return {
            "key": key,
            **c,
            "revenue": {cur: format_units(units) for cur, units in sorted(self.revenue_units.items())},
            "refunded": {cur: format_units(units) for cur, units in sorted(self.refunded_units.items())},
            "ctr": round(ctr, 6),
            "conversion_rate": round(conversion_rate, 6),
            "application_rate": round(application_rate, 6),
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


def group_rows(docs: Iterable[Mapping[str, Any]], group_by: str, rates: EmvRates) -> list[dict[str, Any]]:
    groups: dict[str, Totals] = {}
    for doc in docs:
        label = period_key(doc["day"], group_by) if group_by in TIME_GROUPS else doc["key"]
        groups.setdefault(label, Totals()).add_doc(doc)
    return [groups[label].row(label, rates) for label in sorted(groups)]


def days_between(start: date, end: date) -> list[str]:
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def total(rows: Iterable[StatsRow]) -> Totals:
    totals = Totals()
    for row in rows:
        totals.add_doc(row)
    return totals


def points(
    rows: Sequence[dict[str, Any]], metric: str, from_: date, to: date, interval: str
) -> list[dict[str, Any]]:
    """One point per period of the range, zeros included."""
    by_period = {row["key"]: metric_value(row, metric) for row in rows}
    periods = sorted({period_key(d, interval) for d in days_between(from_, to)})
    return [{"period": p, "value": by_period.get(p, 0.0)} for p in periods]


def trend(current: Totals, previous: Totals) -> dict[str, dict[str, Any]]:
    """Each of my figures now and in the period before, and the relative change."""
    result = {}
    for name in MY_FIGURES:
        now_value, before = current.counters[name], previous.counters[name]
        change = round(now_value / before - 1, 6) if before else None
        result[name] = {"current": now_value, "previous": before, "change": change}
    return result


def program(advocates: Iterable[AdvocateActivity], active_since: datetime) -> dict[str, Any]:
    """Enrolled, active (shared since `active_since`) and trained advocates, overall and per team."""
    teams: dict[str, dict[str, int]] = {}
    overall = {"enrolled": 0, "active": 0, "trained": 0}
    for advocate in advocates:
        active = advocate.last_shared_at is not None and advocate.last_shared_at >= active_since
        for bucket in (overall, teams.setdefault(advocate.team or "none", dict.fromkeys(overall, 0))):
            bucket["enrolled"] += 1
            bucket["active"] += int(active)
            bucket["trained"] += int(advocate.trained)

    def ratios(b: dict[str, int]) -> dict[str, Any]:
        n = b["enrolled"]
        return {
            **b,
            "active_ratio": round(b["active"] / n, 6) if n else 0.0,
            "training_completion": round(b["trained"] / n, 6) if n else 0.0,
        }

    return {**ratios(overall), "by_team": [{"team": t, **ratios(b)} for t, b in sorted(teams.items())]}


def emv_out(rates: EmvRates) -> dict[str, str]:
    return {
        "formula": rates.formula(),
        "cpc": str(rates.cpc),
        "cpm": str(rates.cpm),
        "currency": rates.currency,
    }
