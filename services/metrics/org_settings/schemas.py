"""HTTP models of the metrics settings."""

from __future__ import annotations

from pydantic import BaseModel, Field

from services.metrics.schemas import Request


class MetricsSettingsIn(Request):
    cpc: str = Field(max_length=20, description="cost per click, decimal string")
    cpm: str = Field(max_length=20, description="cost per thousand impressions, decimal string")
    currency: str = Field(min_length=3, max_length=3)


class MetricsSettingsOut(BaseModel):
    cpc: str
    cpm: str
    currency: str
    attribution_window_days: int
    emv_formula: str
    time_zone: str = Field(description="IANA time zone the days, weeks and months of the figures follow")
