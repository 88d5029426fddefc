"""Scoring rules as data, pure: what each kind of event is worth, caps, exclusions, campaigns.

An organisation publishes versions of its rules; events are scored with the version current
when they are processed. An organisation that published none has the defaults (version 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from shared.clock import RequestTime
from shared.errors import Conflict
from shared.fields import NOT_BOOLEAN, Line, read_as_stored


class Kind(StrEnum):
    """What a ledger entry is for. Scoring kinds come from events; the rest move points around."""

    SHARE_MADE = "share_made"
    VERIFIED_SHARE = "verified_share"
    UNIQUE_CLICK = "unique_click"
    LEAD = "lead"
    SALE = "sale"
    APPLICATION = "application"
    HIRE = "hire"
    COURSE_COMPLETED = "course_completed"
    POLICY_ACKNOWLEDGED = "policy_acknowledged"
    CONTENT_PUBLISHED = "content_published"
    KUDOS_RECEIVED = "kudos_received"
    # Corrections and spending: never edits of earlier entries, always new ones.
    REVERSAL = "reversal"
    REDEMPTION = "redemption"
    REFUND = "refund"
    EXPIRY = "expiry"  # a leaver's balance, where the rules say leavers' points expire


SCORING_KINDS: tuple[Kind, ...] = (
    Kind.SHARE_MADE,
    Kind.VERIFIED_SHARE,
    Kind.UNIQUE_CLICK,
    Kind.LEAD,
    Kind.SALE,
    Kind.APPLICATION,
    Kind.HIRE,
    Kind.COURSE_COMPLETED,
    Kind.POLICY_ACKNOWLEDGED,
    Kind.CONTENT_PUBLISHED,
    Kind.KUDOS_RECEIVED,
)

DEFAULT_POINTS: dict[str, int] = {
    Kind.SHARE_MADE: 10,
    Kind.VERIFIED_SHARE: 5,
    Kind.UNIQUE_CLICK: 1,
    Kind.LEAD: 50,
    Kind.SALE: 100,
    # A candidate who applied through an advocate's share, and one who was hired: a hire is worth
    # a referral (recruitment through employees is a main reason to run a program).
    Kind.APPLICATION: 50,
    Kind.HIRE: 300,
    Kind.COURSE_COMPLETED: 30,
    Kind.POLICY_ACKNOWLEDGED: 10,
    Kind.CONTENT_PUBLISHED: 40,
    Kind.KUDOS_RECEIVED: 5,
}

MAX_POINTS = 100_000  # what one event of a kind may be worth, at most
# The most a cap may be: a hundred events at the most points. Caps stored before it was the rule
# are read as they are (`AS_STORED`): rule versions are never edited.
MAX_CAP = 10_000_000
# A cap's type: its bound in the document, checked by `Rules._caps_in_range` but for stored rules.
Cap = Annotated[int, Field(ge=0, json_schema_extra={"maximum": MAX_CAP}), NOT_BOOLEAN]
# A key of `Rules.points`, stated in the document as the scoring kinds (Rules checks it is one).
ScoringKey = Annotated[Kind, WithJsonSchema({"type": "string", "enum": [k.value for k in SCORING_KINDS]})]


class Campaign(BaseModel):
    """A time-boxed multiplier; a contest also gets its own leaderboard period."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    name: Line = Field(min_length=1, max_length=120)
    starts_at: RequestTime
    ends_at: RequestTime
    multiplier: float = Field(1.0, ge=1.0, le=10.0)
    kinds: list[Kind] = Field(default_factory=list, max_length=20, description="empty = every scoring kind")
    tags: list[Line] = Field(default_factory=list, max_length=20, description="empty = any content")
    contest: StrictBool = Field(False, description="also rank advocates on a board for this period")

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _with_zone(cls, at: datetime, info: ValidationInfo) -> datetime:
        # Compared with events' aware times: a naive one would fail the scoring of every event
        # of the organisation. Rules stored before this check hold naive times, meant as UTC.
        if at.tzinfo is not None:
            return at
        if read_as_stored(info):
            return at.replace(tzinfo=UTC)
        raise ValueError("must say its time zone, e.g. 2026-01-31T09:00:00Z")

    @model_validator(mode="after")
    def _window(self) -> Campaign:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self

    def covers(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at


class Rules(BaseModel):
    """An organisation's rules as data. The defaults are what an organisation without rules gets."""

    model_config = ConfigDict(extra="forbid")

    points: dict[ScoringKey, Annotated[int, Field(ge=0, le=MAX_POINTS), NOT_BOOLEAN]] = Field(
        default_factory=lambda: {Kind(k): v for k, v in DEFAULT_POINTS.items()}
    )
    daily_cap: Cap | None = Field(200, description="most points per advocate per UTC day from capped kinds")
    per_share_cap: Cap | None = Field(50, description="most points one share and its clicks may earn")
    capped_kinds: list[Kind] = Field(
        default_factory=lambda: [Kind.SHARE_MADE, Kind.VERIFIED_SHARE, Kind.UNIQUE_CLICK], max_length=20
    )
    excluded_advocate_ids: list[Line] = Field(default_factory=list, max_length=1000)
    excluded_content_ids: list[Line] = Field(default_factory=list, max_length=1000)
    campaigns: list[Campaign] = Field(default_factory=list, max_length=50)
    kudos_weekly_allowance: Annotated[int, Field(ge=0, le=100), NOT_BOOLEAN] = 5
    thought_leader_colleagues: Annotated[int, Field(ge=1, le=1000), NOT_BOOLEAN] = 3
    leaver_points: Literal["keep", "expire"] = Field(
        "keep",
        description="what happens to the balance of an advocate the company directory deactivates:"
        " kept (for a rehire), or expired (taken to 0; their lifetime points and boards stay)",
    )

    @model_validator(mode="after")
    def _points_range(self) -> Rules:
        for kind in self.points:
            if kind not in SCORING_KINDS:
                raise ValueError(f"points: {kind} is not a scoring kind")
        ids = [c.id for c in self.campaigns]
        if len(set(ids)) != len(ids):
            raise ValueError("campaign ids must be unique")
        return self

    @field_validator("daily_cap", "per_share_cap")
    @classmethod
    def _caps_in_range(cls, cap: int | None, info: ValidationInfo) -> int | None:
        if cap is not None and cap > MAX_CAP and not read_as_stored(info):
            raise ValueError(f"must be at most {MAX_CAP}")
        return cap

    def base_points(self, kind: Kind) -> int:
        return self.points.get(kind, DEFAULT_POINTS.get(kind, 0))

    def has_contest(self, contest_id: str) -> bool:
        return any(c.id == contest_id and c.contest for c in self.campaigns)

    def contests_covering(self, at: datetime) -> tuple[str, ...]:
        return tuple(c.id for c in self.campaigns if c.contest and c.covers(at))


@dataclass(frozen=True)
class RuleVersion:
    """One published version of an organisation's rules."""

    version: int
    rules: Rules
    created_by: str
    created_at: datetime


DEFAULTS = RuleVersion(0, Rules(), "", datetime.min)


def next_version(current: int, expected: int | None) -> int:
    """The version a publication gets; refused when the editor started from another one."""
    if expected is not None and expected != current:
        raise Conflict(f"the rules are at version {current}, not {expected}; reload and retry")
    return current + 1


@dataclass(frozen=True)
class Scoring:
    """What an event is worth before caps: the base, the multiplier and the campaigns that applied."""

    kind: Kind
    base: int
    multiplier: float
    campaign_ids: tuple[str, ...]

    @property
    def points(self) -> int:
        return round(self.base * self.multiplier)


def score(rules: Rules, kind: Kind, *, at: datetime, tags: list[str] | None = None) -> Scoring:
    """Base points times the highest multiplier among the campaigns that cover this event."""
    tags = tags or []
    matching = [
        c
        for c in rules.campaigns
        if c.covers(at) and (not c.kinds or kind in c.kinds) and (not c.tags or set(c.tags) & set(tags))
    ]
    multiplier = max((c.multiplier for c in matching), default=1.0)
    return Scoring(kind, rules.base_points(kind), multiplier, tuple(c.id for c in matching))


def without_advocate(rules: Rules, advocate_id: str) -> Rules | None:
    """`rules` with an erased advocate's id gone from the excluded ones; None when it is not there."""
    if advocate_id not in rules.excluded_advocate_ids:
        return None
    kept = [a for a in rules.excluded_advocate_ids if a != advocate_id]
    return rules.model_copy(update={"excluded_advocate_ids": kept})


def is_excluded(rules: Rules, *, advocate_id: str, content_id: str | None = None) -> bool:
    return advocate_id in rules.excluded_advocate_ids or (
        content_id is not None and content_id in rules.excluded_content_ids
    )
