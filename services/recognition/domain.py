"""Recognition rules, pure: points, caps, campaigns, periods, badges, credentials, goals.

Nothing here does I/O. The service reads state, asks these functions what should happen, and
writes the result.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Kind(StrEnum):
    """What a ledger entry is for. Scoring kinds come from events; the rest move points around."""

    SHARE_MADE = "share_made"
    VERIFIED_SHARE = "verified_share"
    UNIQUE_CLICK = "unique_click"
    LEAD = "lead"
    SALE = "sale"
    COURSE_COMPLETED = "course_completed"
    POLICY_ACKNOWLEDGED = "policy_acknowledged"
    CONTENT_PUBLISHED = "content_published"
    KUDOS_RECEIVED = "kudos_received"
    # Corrections and spending: never edits of earlier entries, always new ones.
    REVERSAL = "reversal"
    REDEMPTION = "redemption"
    REFUND = "refund"


SCORING_KINDS: tuple[Kind, ...] = (
    Kind.SHARE_MADE,
    Kind.VERIFIED_SHARE,
    Kind.UNIQUE_CLICK,
    Kind.LEAD,
    Kind.SALE,
    Kind.COURSE_COMPLETED,
    Kind.POLICY_ACKNOWLEDGED,
    Kind.CONTENT_PUBLISHED,
    Kind.KUDOS_RECEIVED,
)

# Counters kept per advocate; badges and goals read them. A scoring entry bumps one of them.
COUNTER_OF_KIND: dict[Kind, str] = {
    Kind.SHARE_MADE: "shares",
    Kind.VERIFIED_SHARE: "verified_shares",
    Kind.UNIQUE_CLICK: "unique_clicks",
    Kind.LEAD: "leads",
    Kind.SALE: "sales",
    Kind.COURSE_COMPLETED: "courses_completed",
    Kind.POLICY_ACKNOWLEDGED: "policies_acknowledged",
    Kind.CONTENT_PUBLISHED: "content_published",
    Kind.KUDOS_RECEIVED: "kudos_received",
}
COLLEAGUE_SHARERS = "colleague_sharers"  # distinct colleagues who shared this advocate's content
COUNTERS: tuple[str, ...] = (*COUNTER_OF_KIND.values(), COLLEAGUE_SHARERS, "points_lifetime")

DEFAULT_POINTS: dict[str, int] = {
    Kind.SHARE_MADE: 10,
    Kind.VERIFIED_SHARE: 5,
    Kind.UNIQUE_CLICK: 1,
    Kind.LEAD: 50,
    Kind.SALE: 100,
    Kind.COURSE_COMPLETED: 30,
    Kind.POLICY_ACKNOWLEDGED: 10,
    Kind.CONTENT_PUBLISHED: 40,
    Kind.KUDOS_RECEIVED: 5,
}


class Campaign(BaseModel):
    """A time-boxed multiplier; a contest also gets its own leaderboard period."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    name: str = Field(min_length=1, max_length=120)
    starts_at: datetime
    ends_at: datetime
    multiplier: float = Field(1.0, ge=1.0, le=10.0)
    kinds: list[Kind] = Field(default_factory=list, max_length=20, description="empty = every scoring kind")
    tags: list[str] = Field(default_factory=list, max_length=20, description="empty = any content")
    contest: bool = Field(False, description="also rank advocates on a board for this period")

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

    points: dict[Kind, int] = Field(default_factory=lambda: {Kind(k): v for k, v in DEFAULT_POINTS.items()})
    daily_cap: int | None = Field(
        200, ge=0, description="most points per advocate per UTC day from capped kinds"
    )
    per_share_cap: int | None = Field(50, ge=0, description="most points one share and its clicks may earn")
    capped_kinds: list[Kind] = Field(
        default_factory=lambda: [Kind.SHARE_MADE, Kind.VERIFIED_SHARE, Kind.UNIQUE_CLICK], max_length=20
    )
    excluded_advocate_ids: list[str] = Field(default_factory=list, max_length=1000)
    excluded_content_ids: list[str] = Field(default_factory=list, max_length=1000)
    campaigns: list[Campaign] = Field(default_factory=list, max_length=50)
    kudos_weekly_allowance: int = Field(5, ge=0, le=100)
    thought_leader_colleagues: int = Field(3, ge=1, le=1000)

    @model_validator(mode="after")
    def _points_range(self) -> Rules:
        for kind, value in self.points.items():
            if kind not in SCORING_KINDS:
                raise ValueError(f"points: {kind} is not a scoring kind")
            if not 0 <= value <= 100_000:
                raise ValueError(f"points.{kind} must be between 0 and 100000")
        ids = [c.id for c in self.campaigns]
        if len(set(ids)) != len(ids):
            raise ValueError("campaign ids must be unique")
        return self

    def base_points(self, kind: Kind) -> int:
        return self.points.get(kind, DEFAULT_POINTS.get(kind, 0))


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


def is_excluded(rules: Rules, *, advocate_id: str, content_id: str | None = None) -> bool:
    return advocate_id in rules.excluded_advocate_ids or (
        content_id is not None and content_id in rules.excluded_content_ids
    )


def capped(
    points: int, *, daily_used: int, daily_cap: int | None, share_used: int, share_cap: int | None
) -> int:
    """The part of `points` that fits under both caps (never negative)."""
    grant = points
    if daily_cap is not None:
        grant = min(grant, daily_cap - daily_used)
    if share_cap is not None:
        grant = min(grant, share_cap - share_used)
    return max(0, grant)


# --- ids --------------------------------------------------------------------------------------


def stable_id(*parts: str) -> str:
    """A deterministic id: the same inputs always give the same id, so retries collide."""
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def entry_id(org: str, source_event_id: str, kind: str) -> str:
    return stable_id("entry", org, source_event_id, kind)


def award_id(org: str, advocate_id: str, badge_id: str) -> str:
    return stable_id("award", org, advocate_id, badge_id)


# --- periods ---------------------------------------------------------------------------------


class Period(StrEnum):
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    ALL = "all"
    CONTEST = "contest"


def period_key(period: Period, at: datetime, contest_id: str | None = None) -> str:
    """The board key of the period that contains `at`, e.g. 'week:2026-W48', 'quarter:2026-Q4'."""
    at = at.astimezone(UTC)
    if period is Period.WEEK:
        year, week, _ = at.isocalendar()
        return f"week:{year}-W{week:02d}"
    if period is Period.MONTH:
        return f"month:{at.year}-{at.month:02d}"
    if period is Period.QUARTER:
        return f"quarter:{at.year}-Q{(at.month - 1) // 3 + 1}"
    if period is Period.CONTEST:
        if not contest_id:
            raise ValueError("a contest period needs a contest id")
        return f"contest:{contest_id}"
    return "all"


def period_keys(at: datetime, contest_ids: tuple[str, ...] = ()) -> list[str]:
    """Every board an entry at `at` counts on."""
    keys = [period_key(p, at) for p in (Period.WEEK, Period.MONTH, Period.QUARTER, Period.ALL)]
    return keys + [period_key(Period.CONTEST, at, c) for c in contest_ids]


def contests_covering(rules: Rules, at: datetime) -> tuple[str, ...]:
    return tuple(c.id for c in rules.campaigns if c.contest and c.covers(at))


def day_key(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d")


def week_key(at: datetime) -> str:
    return period_key(Period.WEEK, at)


def quarter_bounds(at: datetime) -> tuple[datetime, datetime]:
    at = at.astimezone(UTC)
    first_month = 3 * ((at.month - 1) // 3) + 1
    start = datetime(at.year, first_month, 1, tzinfo=UTC)
    end = datetime(at.year + (first_month + 3 > 12), (first_month + 2) % 12 + 1, 1, tzinfo=UTC)
    return start, end


# --- ranking ---------------------------------------------------------------------------------


def normalised(points: int, active_advocates: int) -> float:
    """Team points per active advocate, so a team of 3 competes fairly with a team of 30."""
    return round(points / max(1, active_advocates), 2)


def competition_ranks(
    points: list[int], *, first_position: int = 1, previous: tuple[int, int] | None = None
) -> list[int]:
    """1224 ranking: equal points share a rank. `previous` = (points, rank) of the item before."""
    ranks: list[int] = []
    last = previous
    for i, p in enumerate(points):
        position = first_position + i
        rank = last[1] if last is not None and last[0] == p else position
        ranks.append(rank)
        last = (p, rank)
    return ranks


# --- badges ----------------------------------------------------------------------------------


class Alignment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_name: str = Field(min_length=1, max_length=200)
    target_url: str = Field(min_length=1, max_length=500)
    target_framework: str | None = Field(None, max_length=200)
    target_code: str | None = Field(None, max_length=100)


class BadgeDefinition(BaseModel):
    """An achievement: awarded once when `metric` reaches `threshold`."""

    model_config = ConfigDict(extra="forbid")

    badge_id: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str = Field(min_length=1, max_length=120)
    description: str = Field(min_length=1, max_length=1000)
    criteria: str = Field(min_length=1, max_length=2000, description="how it is earned, in words (Markdown)")
    image_url: str = Field(min_length=1, max_length=500)
    metric: str
    threshold: int = Field(ge=1, le=10_000_000)
    alignments: list[Alignment] = Field(default_factory=list, max_length=10)
    builtin: bool = False

    @model_validator(mode="after")
    def _metric_known(self) -> BadgeDefinition:
        if self.metric not in COUNTERS:
            raise ValueError(f"metric must be one of {', '.join(COUNTERS)}")
        return self


SKILLS_FRAMEWORK = "ESCO"


def builtin_badges(rules: Rules, image_base: str) -> list[BadgeDefinition]:
    def skill(name: str, code: str) -> Alignment:
        return Alignment(
            target_name=name,
            target_url=f"http://data.europa.eu/esco/skill/{code}",
            target_framework=SKILLS_FRAMEWORK,
            target_code=code,
        )

    social = skill("use social media for marketing", "S1.2.3")
    comms = skill("communicate with customers", "S1.1.1")
    specs = [
        (
            "first-share",
            "First share",
            "Shared company content for the first time.",
            "Share one item.",
            "shares",
            1,
            [social],
        ),
        (
            "shares-10",
            "Ten shares",
            "Shared company content ten times.",
            "Share ten items.",
            "shares",
            10,
            [social],
        ),
        (
            "shares-100",
            "A hundred shares",
            "Shared company content a hundred times.",
            "Share a hundred items.",
            "shares",
            100,
            [social],
        ),
        (
            "first-lead",
            "First lead",
            "A share brought in a lead.",
            "One of your shares produces a lead.",
            "leads",
            1,
            [comms],
        ),
        (
            "trained",
            "Trained",
            "Completed social media training.",
            "Complete a course of the program.",
            "courses_completed",
            1,
            [social],
        ),
        (
            "thought-leader",
            "Thought leader",
            "Colleagues share the content you write.",
            f"Content you wrote is shared by {rules.thought_leader_colleagues} different colleagues.",
            COLLEAGUE_SHARERS,
            rules.thought_leader_colleagues,
            [comms],
        ),
    ]
    return [
        BadgeDefinition(
            badge_id=badge_id,
            name=name,
            description=description,
            criteria=criteria,
            image_url=f"{image_base}/{badge_id}.png",
            metric=metric,
            threshold=threshold,
            alignments=alignments,
            builtin=True,
        )
        for badge_id, name, description, criteria, metric, threshold, alignments in specs
    ]


def badges_earned(
    definitions: list[BadgeDefinition], counters: dict[str, int], held: set[str]
) -> list[BadgeDefinition]:
    return [d for d in definitions if d.badge_id not in held and counters.get(d.metric, 0) >= d.threshold]


OB_CONTEXTS = [
    "https://www.w3.org/ns/credentials/v2",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
]


def open_badge_credential(
    *,
    definition: BadgeDefinition,
    award_id: str,
    org: str,
    advocate_id: str,
    awarded_at: datetime,
    base_url: str,
) -> dict[str, Any]:
    """An unsigned Open Badges 3.0 OpenBadgeCredential (VC Data Model 2.0) for one award.

    The earner is identified by a salted SHA-256 of their id, not the id itself, so the document
    can be shared without exposing the internal identifier.
    """
    salt = stable_id("salt", award_id)[:16]
    identity_hash = hashlib.sha256(f"{advocate_id}{salt}".encode()).hexdigest()
    issued = awarded_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    achievement: dict[str, Any] = {
        "id": f"{base_url}/v1/orgs/{org}/achievements/{definition.badge_id}",
        "type": ["Achievement"],
        "achievementType": "Badge",
        "name": definition.name,
        "description": definition.description,
        "criteria": {"narrative": definition.criteria},
        "image": {"id": definition.image_url, "type": "Image", "caption": definition.name},
    }
    if definition.alignments:
        achievement["alignment"] = [
            {
                "type": ["Alignment"],
                "targetName": a.target_name,
                "targetUrl": a.target_url,
                **({"targetFramework": a.target_framework} if a.target_framework else {}),
                **({"targetCode": a.target_code} if a.target_code else {}),
            }
            for a in definition.alignments
        ]
    return {
        "@context": list(OB_CONTEXTS),
        "id": f"urn:uuid:{_uuid_from(award_id)}",
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": definition.name,
        "description": definition.description,
        "issuer": {"id": f"{base_url}/v1/orgs/{org}/issuer", "type": ["Profile"], "name": f"Chorus ({org})"},
        "validFrom": issued,
        "awardedDate": issued,
        "credentialSubject": {
            "type": ["AchievementSubject"],
            "identifier": [
                {
                    "type": "IdentityObject",
                    "hashed": True,
                    "identityHash": f"sha256${identity_hash}",
                    "identityType": "identifier",
                    "salt": salt,
                }
            ],
            "achievement": achievement,
        },
    }


def _uuid_from(hex32: str) -> str:
    h = hex32[:32]
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


# --- kudos -----------------------------------------------------------------------------------


def kudos_allowance_left(given_this_week: int, allowance: int) -> int:
    return max(0, allowance - given_this_week)


# --- webhooks --------------------------------------------------------------------------------

# Signing, sending, retries, the delivery log and replay are the shared engine's: shared/webhooks/.


# --- redemptions -----------------------------------------------------------------------------


class RedemptionStatus(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    FULFILLED = "fulfilled"


NEXT_STATUSES: dict[RedemptionStatus, tuple[RedemptionStatus, ...]] = {
    RedemptionStatus.REQUESTED: (RedemptionStatus.APPROVED, RedemptionStatus.REJECTED),
    RedemptionStatus.APPROVED: (RedemptionStatus.FULFILLED, RedemptionStatus.REJECTED),
    RedemptionStatus.REJECTED: (),
    RedemptionStatus.FULFILLED: (),
}


def can_move(current: RedemptionStatus, target: RedemptionStatus) -> bool:
    return target in NEXT_STATUSES[current]


# --- personal goals --------------------------------------------------------------------------


class GoalKind(StrEnum):
    AUDIENCE = "audience"  # grow my audience to N
    POSTS_THIS_QUARTER = "posts_this_quarter"  # publish K posts this quarter
    COURSE = "course"  # complete course X
    TOP_ON_TAG = "top_on_tag"  # top contributor on tag T


@dataclass(frozen=True)
class GoalProgress:
    current: int
    target: int
    achieved: bool


def goal_progress(kind: GoalKind, target: int, *, value: int) -> GoalProgress:
    """`value` is what the events say: audience size, posts, 1 if the course is done, or rank on the tag."""
    if kind is GoalKind.TOP_ON_TAG:
        # value is the advocate's rank on the tag (0 = no shares yet); target is the rank wanted.
        return GoalProgress(current=value, target=target, achieved=0 < value <= target)
    return GoalProgress(current=value, target=target, achieved=value >= target)
