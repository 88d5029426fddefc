"""HTTP models of points and the ledger."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from shared.fields import Line, Text
from shared.pagination import Page
from shared.schemas import RequestBody, ResponseBody


class PointsOut(ResponseBody):
    balance: int = Field(description="spendable points")
    lifetime: int = Field(description="all points earned, less corrections; spending does not lower it")
    written_off: int = Field(0, description="corrections that found the balance already spent")
    counters: dict[str, int]
    badges: list[str]


class LedgerEntryOut(ResponseBody):
    entry_id: str
    advocate_id: str
    kind: str
    points: int
    reason: str
    source_event_id: str
    source_event_type: str
    ref: str | None = None
    reverses: str | None = None
    multiplier: float | None = None
    campaign_ids: list[str] = Field(default_factory=list)
    uncapped_points: int | None = None
    rules_version: int | None = None
    occurred_at: datetime
    created_at: datetime


class LedgerPage(Page[LedgerEntryOut]):
    pass


class ReversalIn(RequestBody):
    reason: Text = Field(min_length=1, max_length=500)


class LeadInvalidationIn(RequestBody):
    conversion_id: Line = Field(min_length=1, max_length=200)
    reason: Text = Field(min_length=1, max_length=500)
