"""HTTP request and response models of the recognition API."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from services.recognition.domain import BadgeDefinition, GoalKind, Rules
from shared.webhooks.engine import Delivery


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- rules ---------------------------------------------------------------------------------------


class RulesOut(BaseModel):
    version: int = Field(
        description="0 means the organisation has not published rules: these are the defaults"
    )
    rules: Rules


class RulesIn(Request):
    rules: Rules
    expected_version: int | None = Field(
        None, ge=0, description="the version you edited; a 409 if someone published another since"
    )


class RuleVersionOut(BaseModel):
    version: int
    rules: Rules
    created_by: str
    created_at: datetime


class RuleVersionPage(BaseModel):
    items: list[RuleVersionOut]
    next_cursor: str | None


# --- points and ledger -------------------------------------------------------------------------


class PointsOut(BaseModel):
    balance: int = Field(description="spendable points")
    lifetime: int = Field(description="all points earned, less corrections; spending does not lower it")
    written_off: int = Field(0, description="corrections that found the balance already spent")
    counters: dict[str, int]
    badges: list[str]


class LedgerEntryOut(BaseModel):
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


class LedgerPage(BaseModel):
    items: list[LedgerEntryOut]
    next_cursor: str | None


class ReversalIn(Request):
    reason: str = Field(min_length=1, max_length=500)


class LeadInvalidationIn(Request):
    conversion_id: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=500)


# --- leaderboards ------------------------------------------------------------------------------


class BoardRow(BaseModel):
    rank: int
    points: int
    advocate_id: str | None = Field(None, description="set on advocate boards")
    team: str | None = None
    active_advocates: int | None = Field(None, description="team boards: enrolled advocates of the team")
    points_per_advocate: float | None = Field(None, description="team boards: what teams are ranked by")
    is_me: bool = False


class LeaderboardOut(BaseModel):
    period: str
    period_key: str
    scope: Literal["org", "team"]
    team: str | None
    items: list[BoardRow]
    next_cursor: str | None
    me: BoardRow | None = Field(None, description="your own standing, shown to you even if you opted out")
    as_of: datetime | None = Field(
        None, description="when the standings were read from the board projection (advocate boards)"
    )


# --- badges ------------------------------------------------------------------------------------


class BadgeDefinitionOut(BadgeDefinition):
    pass


class BadgeDefinitionPage(BaseModel):
    items: list[BadgeDefinitionOut]
    next_cursor: str | None = None


class AwardOut(BaseModel):
    award_id: str
    badge_id: str
    name: str
    awarded_at: datetime
    credential_url: str


class AwardPage(BaseModel):
    items: list[AwardOut]
    next_cursor: str | None = None


# --- rewards -----------------------------------------------------------------------------------


class RewardIn(Request):
    name: str = Field(min_length=1, max_length=120)
    description: str = Field("", max_length=2000)
    cost: int = Field(ge=1, le=10_000_000, description="points")
    stock: int | None = Field(None, ge=0, le=10_000_000, description="units available; none = unlimited")
    price_cents: int = Field(0, ge=0, le=100_000_000, description="what one unit costs the organisation")
    budget_cents: int | None = Field(
        None, ge=0, le=10_000_000_000, description="most the organisation spends"
    )
    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$")


class RewardOut(BaseModel):
    reward_id: str
    name: str
    description: str
    cost: int
    stock: int | None
    price_cents: int
    budget_cents: int | None
    budget_left_cents: int | None
    currency: str
    active: bool
    created_at: datetime


class RewardPage(BaseModel):
    items: list[RewardOut]
    next_cursor: str | None


class RedemptionOut(BaseModel):
    redemption_id: str
    reward_id: str
    reward_name: str
    advocate_id: str
    cost: int
    status: str
    note: str | None = None
    created_at: datetime
    updated_at: datetime


class RedemptionPage(BaseModel):
    items: list[RedemptionOut]
    next_cursor: str | None


class RedemptionDecisionIn(Request):
    note: str | None = Field(None, max_length=1000)


class WebhookIn(Request):
    url: HttpUrl
    secret: str = Field(
        min_length=16, max_length=200, description="HMAC-SHA256 key; signatures are sha256=<hex>"
    )


class WebhookOut(BaseModel):
    url: str
    configured: bool
    signature_header: str
    timestamp_header: str


class AttemptOut(BaseModel):
    at: datetime
    status: int | None = Field(description="the HTTP status, or null when no response came")
    error: str | None = Field(description="why no response came (timeout, refused, ...)")
    duration_ms: int


class DeliveryOut(BaseModel):
    delivery_id: str
    url: str
    state: str = Field(description="pending, delivered, failed (gave up) or cancelled (no webhook)")
    attempts: int
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    created_at: datetime
    replay_of: str | None = Field(None, description="the delivery this one repeats, if replayed")
    log: list[AttemptOut] = Field(default_factory=list, description="every attempt, oldest first")


def delivery_out(delivery: Delivery) -> DeliveryOut:
    failed_status = delivery.last_status is not None and not 200 <= delivery.last_status < 300
    return DeliveryOut(
        delivery_id=delivery.id,
        url=delivery.url,
        state=str(delivery.state),
        attempts=delivery.attempts,
        # An HTTP failure reads as before: its status, since the engine keeps no text for it.
        last_error=delivery.last_error or (f"HTTP {delivery.last_status}" if failed_status else None),
        next_attempt_at=delivery.next_attempt_at,
        created_at=delivery.created_at,
        replay_of=delivery.replay_of,
        log=[AttemptOut(**asdict(a)) for a in delivery.log],
    )


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None = None


# --- kudos -------------------------------------------------------------------------------------


class KudosIn(Request):
    to: str = Field(min_length=1, max_length=200, description="the colleague's advocate id")
    message: str = Field(min_length=1, max_length=500)


class KudosOut(BaseModel):
    kudos_id: str
    from_advocate_id: str | None
    to: str
    message: str
    created_at: datetime
    allowance_left: int | None = None


class KudosPage(BaseModel):
    items: list[KudosOut]
    next_cursor: str | None = None


# --- goals -------------------------------------------------------------------------------------


class GoalIn(Request):
    kind: GoalKind
    target: int = Field(ge=1, le=1_000_000_000, description="audience size, posts, 1 for a course, or a rank")
    course_id: str | None = Field(None, max_length=200)
    tag: str | None = Field(None, max_length=100)

    @model_validator(mode="after")
    def _needs(self) -> GoalIn:
        if self.kind is GoalKind.COURSE and not self.course_id:
            raise ValueError("a course goal needs course_id")
        if self.kind is GoalKind.TOP_ON_TAG and not self.tag:
            raise ValueError("a top_on_tag goal needs tag")
        return self


class GoalOut(BaseModel):
    goal_id: str
    kind: GoalKind
    target: int
    course_id: str | None = None
    tag: str | None = None
    current: int
    achieved: bool
    created_at: datetime


class GoalPage(BaseModel):
    items: list[GoalOut]
    next_cursor: str | None = None


def strip_id(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """A stored document as an API object: `_id` becomes `<name>`."""
    out = {k: v for k, v in doc.items() if k != "_id"}
    out[name] = doc["_id"]
    return out
