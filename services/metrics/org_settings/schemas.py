"""HTTP models of the metrics settings."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, WithJsonSchema

from services.metrics.org_settings.domain import PAYABLE_CURRENCIES, RATE_PATTERN
from shared.schemas import RequestBody, ResponseBody

# An ISO 4217 code a sale can be paid in: domain.parse_currency refuses any other, naming currency.
PayableCurrency = Annotated[str, WithJsonSchema({"type": "string", "enum": list(PAYABLE_CURRENCIES)})]


class MetricsSettingsIn(RequestBody):
    cpc: str = Field(max_length=20, pattern=RATE_PATTERN, description="cost per click, decimal string")
    cpm: str = Field(
        max_length=20, pattern=RATE_PATTERN, description="cost per thousand impressions, decimal string"
    )
    currency: PayableCurrency = Field(
        description="ISO 4217 code of a currency a sale can be paid in, e.g. EUR"
    )


class MetricsSettingsOut(ResponseBody):
    cpc: str
    cpm: str
    currency: str
    attribution_window_days: int
    emv_formula: str
    time_zone: str = Field(description="IANA time zone the days, weeks and months of the figures follow")
