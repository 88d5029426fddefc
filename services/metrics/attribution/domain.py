"""Rules of attribution: what a conversion (a lead, a sale, a job application, a hire) may carry,
whether it is credited to the click it names (the attribution window), how the credit splits
among the advocates who reached the customer, and the event a conversion emits.

A candidate is the `customer_id` of an application and of its hire: the application is credited
like a lead, and the hire through the candidate's application."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from iso4217 import Currency

from services.metrics.org_settings.domain import parse_currency
from services.metrics.projections.domain import REVENUE_SCALE, Click
from shared.errors import InvalidInput
from shared.events import Event, EventData
from shared.events.conversions import (
    ApplicationSubmitted,
    Credit,
    HireMade,
    LeadCaptured,
    SaleRecorded,
    SaleRefunded,
)
from shared.ids import ERASED

SOURCE = "/chorus/metrics"
# The content type a job application's click must lead to (content's ContentType).
JOB_OPENING = "job_opening"


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


def parse_money(kind: str, amount: str | None, currency: str | None) -> tuple[Decimal | None, str | None]:
    """A sale's (or a refund's) amount and currency; other conversions carry neither."""
    if kind in ("sale", "refund"):
        code = parse_currency(currency)
        return parse_amount(amount, code), code
    if amount is not None or currency is not None:
        raise InvalidInput.field("amount", "only sales and refunds carry an amount and a currency")
    return None, None


def check_order(kind: str, order_id: str | None) -> str | None:
    """A sale names its order (a customer's orders each count, the same one once), and a refund
    the order it gives back on; other conversions none."""
    if kind in ("sale", "refund") and not order_id:
        raise InvalidInput.field("order_id", f"a {kind} needs the order it belongs to")
    if kind not in ("sale", "refund") and order_id is not None:
        raise InvalidInput.field("order_id", "only sales and refunds carry an order")
    return order_id


def check_click_named(kind: str, click_id: str | None) -> None:
    """A hire names no click (it is credited through the application), nor does a refund (it
    follows its sale)."""
    if kind == "hire" and click_id is not None:
        raise InvalidInput.field("click_id", "a hire names no click: it is credited through the application")
    if kind == "refund" and click_id is not None:
        raise InvalidInput.field("click_id", "a refund names no click: it follows its sale")


def revenue_units(amount: Decimal) -> int:
    """An amount in the projections' revenue units (exact integers)."""
    return int(amount * REVENUE_SCALE)


def refundable(
    sale: dict[str, Any] | None, refunded_units: int, amount: Decimal, currency: str
) -> dict[str, Any]:
    """The sale (its answer) a refund gives back on: at most what remains of it, in its currency."""
    if sale is None:
        raise InvalidInput.field("order_id", "no sale of this customer with this order")
    if currency != sale["currency"]:
        raise InvalidInput.field("currency", f"must be the sale's, {sale['currency']}")
    remaining = revenue_units(Decimal(sale["amount"])) - refunded_units
    if revenue_units(amount) > remaining:
        left = f"{(Decimal(remaining) / REVENUE_SCALE).normalize():f} {currency}"
        raise InvalidInput.field("amount", f"is more than what remains of the sale ({left})")
    return sale


def refund(
    reported: Reported, sale: dict[str, Any], refunded_units: int, sale_click: Click | None, now: datetime
) -> tuple[Event[Any], dict[str, Any]]:
    """The refund of `sale` (its answer; `refunded_units`: what earlier refunds gave back of it;
    `sale_click`: the click it was credited to): its event, counted where the sale was, and its
    answer."""
    assert reported.amount is not None
    refund_id = uuid.uuid4().hex
    remaining = revenue_units(Decimal(sale["amount"])) - refunded_units - revenue_units(reported.amount)
    about = {name: sale[name] for name in ("share_id", "advocate_id", "content_id", "attributed", "credits")}
    if about["advocate_id"] == ERASED:  # the sale left the erased advocate's figures with them
        about["advocate_id"] = None
    data = SaleRefunded(
        conversion_id=refund_id,
        key=sale["share_id"] or sale["conversion_id"],
        customer_id=reported.customer_id,
        converted_at=now,
        sale_id=sale["conversion_id"],
        order_id=reported.order_id or "",
        amount=str(reported.amount),
        currency=reported.currency or "",
        fully_refunded=remaining == 0,
        **{**about, "credits": event_credits(about["credits"])},
        network=sale_click.network if sale_click else None,
        team=sale_click.team if sale_click else None,
        tags=sale_click.tags if sale_click else [],
    )
    event = Event.create(data, tenant=reported.org, source=SOURCE, subject=refund_id, event_id=refund_id)
    response = {
        **about,
        "conversion_id": refund_id,
        "type": "refund",
        "customer_id": reported.customer_id,
        "reason": sale["reason"],
        "click_id": None,
        "amount": str(reported.amount),
        "currency": reported.currency,
        "order_id": reported.order_id,
        "sale_id": sale["conversion_id"],
        "converted_at": now.isoformat(),
        "duplicate": False,
    }
    return event, response


def check_job(kind: str, click: Click | None) -> None:
    """An application's click leads to a job opening (a click indexed before content types were
    kept is taken as it is)."""
    if kind == "application" and click is not None and click.content_type not in (None, JOB_OPENING):
        raise InvalidInput.field(
            "click_id", f"an application is for a job opening; this click led to a {click.content_type}"
        )


NO_APPLICATION = "no application of this candidate was recorded"
UNATTRIBUTED_APPLICATION = "the candidate's application is unattributed"


@dataclass(frozen=True)
class Touch:
    """A click that reached the customer."""

    click_id: str
    advocate_id: str
    share_id: str
    clicked_at: datetime


def touch(click: Click) -> Touch:
    return Touch(click.click_id, click.advocate_id, click.share_id, click.clicked_at)


def window_start(now: datetime, window_days: int) -> datetime:
    """The earliest click a conversion at `now` can be credited to."""
    return now - timedelta(days=window_days)


# How far ahead of the service's clock a reported time may be (the integrator's clock may run fast).
CLOCK_SKEW = timedelta(minutes=1)


def conversion_time(occurred_at: datetime | None, now: datetime, window_days: int) -> datetime:
    """When the conversion happened: now, or the `occurred_at` the integrator reported, which may
    not be in the future nor before the attribution window (its click could not be credited)."""
    if occurred_at is None:
        return now
    at = occurred_at.astimezone(UTC)
    at = at.replace(microsecond=at.microsecond // 1000 * 1000)  # what MongoDB keeps
    if at > now + CLOCK_SKEW:
        raise InvalidInput.field("occurred_at", "may not be in the future")
    if at < window_start(now, window_days):
        raise InvalidInput.field("occurred_at", f"is older than the {window_days}-day attribution window")
    return min(at, now)


def unattributed_reason(
    click_id: str | None, click: Click | None, since: datetime, window_days: int, at: datetime
) -> str | None:
    """Why a conversion naming `click_id` (found as `click`) is not credited to it; None: it is."""
    if click_id is None:
        return "no click id"
    if click is None or click.bot or click.advocate_id == ERASED:
        return "unknown click id"
    if click.clicked_at < since:
        return f"the click is older than the {window_days}-day attribution window"
    if click.clicked_at > at:
        return "the click came after the conversion"
    return None


SELF_CLICK_ONLY = "the only click is the advocate's own, and a self-click earns no credit"


def credited_click(named: Click, visitor_clicks: Sequence[Click]) -> Click | None:
    """The click a conversion is credited to: the one it names, unless that is the advocate's
    own (a self-click never earns credit); then the same visitor's latest other click, if any."""
    if not named.self_click:
        return named
    others = [c for c in visitor_clicks if not c.self_click]
    return max(others, key=lambda c: c.clicked_at, default=None)


def creditable_touches(
    credited: Click, visitor_clicks: Sequence[Click], earlier: Sequence[Touch], since: datetime, at: datetime
) -> list[Touch]:
    """What may share the credit: the credited click, the visitor's other clicks but self-clicks
    and those of advocates without tracking consent, and the customer's earlier touches inside
    the window, from `since` to the conversion (`at`): a conversion reported late must not
    credit a click that came after it."""
    clicks = [touch(c) for c in (credited, *visitor_clicks) if not c.self_click and c.tracked]
    return clicks + [t for t in earlier if since <= t.clicked_at <= at]


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


@dataclass(frozen=True)
class Reported:
    """A lead or a sale as the integrator reported it (amount and currency checked)."""

    org: str
    kind: str  # "lead", "sale", "application" or "hire"
    customer_id: str
    click_id: str | None
    amount: Decimal | None
    currency: str | None
    order_id: str | None = None  # sales


@dataclass(frozen=True)
class Conversion:
    """A decided conversion: its event, the answer to the integrator, and what it keeps."""

    claim_id: str  # one per organisation, type and customer; a sale per customer and order
    event: Event[Any]
    response: dict[str, Any]
    click: Click | None  # the click it is credited to
    converted_at: datetime


def convert(
    reported: Reported,
    click: Click | None,
    reason: str | None,
    credits: list[dict[str, Any]],
    now: datetime,
    application_id: str | None = None,
) -> Conversion:
    """The conversion of `reported`, credited to `click` unless there is a `reason` not to (a
    hire: to its candidate's application, `application_id`)."""
    attributed = reason is None and click is not None
    credited = click if attributed else None
    # A click without its advocate's tracking consent credits the share and content, not them;
    # nor does the click of an erased advocate a hire takes through its application.
    advocate_id = credited.advocate_id if credited and credited.tracked else None
    advocate_id = None if advocate_id == ERASED else advocate_id
    conversion_id = uuid.uuid4().hex
    fields: dict[str, Any] = {
        "conversion_id": conversion_id,
        "key": credited.share_id if credited else conversion_id,
        "click_id": reported.click_id,
        "customer_id": reported.customer_id,
        "attributed": attributed,
        "share_id": credited.share_id if credited else None,
        "advocate_id": advocate_id,
        "content_id": credited.content_id if credited else None,
        "credits": event_credits(credits),
        "converted_at": now,
        "network": credited.network if credited else None,
        "team": credited.team if credited else None,
        "tags": credited.tags if credited else [],
    }
    data: EventData
    if reported.kind == "sale":
        money = {"amount": str(reported.amount), "currency": reported.currency or ""}
        data = SaleRecorded(**fields, **money, order_id=reported.order_id)
    elif reported.kind == "application":
        data = ApplicationSubmitted(**fields)
    elif reported.kind == "hire":
        data = HireMade(**fields, application_id=application_id)
    else:
        data = LeadCaptured(**fields)
    event = Event.create(
        data, tenant=reported.org, source=SOURCE, subject=conversion_id, event_id=conversion_id
    )
    response: dict[str, Any] = {
        "conversion_id": conversion_id,
        "type": reported.kind,
        "customer_id": reported.customer_id,
        "attributed": attributed,
        "reason": reason,
        "click_id": reported.click_id,
        "share_id": fields["share_id"],
        "advocate_id": fields["advocate_id"],
        "content_id": fields["content_id"],
        "credits": credits,
        "amount": str(reported.amount) if reported.amount is not None else None,
        "currency": reported.currency,
        "order_id": reported.order_id,
        "application_id": application_id,
        "converted_at": now.isoformat(),
        "duplicate": False,
    }
    claim = claim_id(reported.org, reported.kind, reported.customer_id, reported.order_id)
    return Conversion(claim, event, response, credited, now)


def claim_id(org: str, kind: str, customer_id: str, order_id: str | None = None) -> str:
    """What a conversion counts once per: its organisation, type and customer (a sale: and order)."""
    claim = f"{org}|{kind}|{customer_id}"
    return claim if order_id is None else f"{claim}|{order_id}"


def event_credits(credits: list[dict[str, Any]]) -> list[Credit]:
    """The credits an event carries: those of an erased advocate (copied from a stored answer,
    by a hire or a refund) are left out. Published, "erased" would be sealed as a person's id and
    give the vault a person of that name; and a credit's advocate may not be null (the event
    contract only grows)."""
    return [Credit(**c) for c in credits if c["advocate_id"] != ERASED]


def answer_without(response: dict[str, Any], advocate_id: str) -> dict[str, Any]:
    """A recorded answer with an erased advocate taken out: its credits stay, for nobody."""
    out = dict(response)
    if out.get("advocate_id") == advocate_id:
        out["advocate_id"] = ERASED
    out["credits"] = [
        {**credit, "advocate_id": ERASED} if credit.get("advocate_id") == advocate_id else credit
        for credit in out.get("credits") or []
    ]
    return out


def click_without(click: Click | None, advocate_id: str) -> Click | None:
    """The click a conversion was credited to, without an erased advocate (nor their team, nor
    the visitor, as in the click index)."""
    if click is None or click.advocate_id != advocate_id:
        return click
    return dataclasses.replace(click, advocate_id=ERASED, team=None, visitor_hash=None)
