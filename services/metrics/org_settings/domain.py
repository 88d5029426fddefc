"""Rules of the metrics settings: what a rate may be, and the earned media value formula."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from iso4217 import Currency

from shared.clock import DEFAULT_TIME_ZONE, time_zone
from shared.errors import InvalidInput

CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}$")
# The currencies a sale can be paid in: ISO 4217 codes with minor units defined.
PAYABLE_CURRENCIES: tuple[str, ...] = tuple(sorted(c.value for c in Currency if c.exponent is not None))
# A rate: a plain non-negative decimal, e.g. 0.35 (no sign, exponent or spaces).
RATE_PATTERN = r"^[0-9]+(\.[0-9]+)?$"


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


@dataclass(frozen=True)
class OrgSettings:
    """What an organisation has set; `attribution_window_days` None: the service's default.
    `time_zone` (IANA, from the content service's settings) says on which day, week and month
    its shares, clicks and conversions count."""

    org: str
    rates: EmvRates
    attribution_window_days: int | None
    time_zone: str = DEFAULT_TIME_ZONE


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


def parse_rate(name: str, raw: str) -> Decimal:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise InvalidInput.field(name, "must be a decimal number") from None
    if not value.is_finite() or value < 0:
        raise InvalidInput.field(name, "must be zero or more")
    return value


def parse_rates(cpc: str, cpm: str, currency: str) -> EmvRates:
    return EmvRates(parse_rate("cpc", cpc), parse_rate("cpm", cpm), parse_currency(currency))


def counting_zone(name: str) -> str:
    """The zone an organisation's days are counted in: its own, or UTC when this process has no
    data for it (content checked it; a zone missing here must not stop every organisation's
    counters, since a poll is written whole)."""
    try:
        time_zone(name)
    except ValueError:
        return DEFAULT_TIME_ZONE
    return name
