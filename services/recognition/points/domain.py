"""Points rules, pure: what an event scores, caps, ledger entries and what they change.

An event becomes a ledger entry (its id derived from the event and kind, so a redelivery is the
same entry), possibly capped to 0; the entry is then projected onto the advocate's account
(balance, lifetime, counters) and the boards of its periods. Corrections and spending are new
entries (negative), never edits of earlier ones.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from services.recognition.leaderboards.domain import period_keys, quarter_bounds, quarter_of
from services.recognition.rules.domain import SCORING_KINDS, Kind, Rules, Scoring
from shared.errors import Conflict
from shared.events import Event
from shared.events.clicks import ClickRecorded
from shared.events.content import ContentPublished
from shared.events.conversions import Conversion
from shared.events.recognition import RewardGranted
from shared.events.shares import ShareMade
from shared.events.training import CourseCompleted, PolicyAcknowledged

C = TypeVar("C", bound=Conversion)  # a lead, sale, application or hire

SOURCE = "/chorus/recognition"
KUDOS_EVENT_TYPE = "chorus.kudos.given"  # kudos are given through the API, not an event topic
REDEEMED_EVENT_TYPE = "chorus.reward.redeemed"

# Counters kept per advocate; badges and goals read them. A scoring entry bumps one of them.
Counter = Literal[
    "shares",
    "verified_shares",
    "unique_clicks",
    "leads",
    "sales",
    "applications",
    "hires",
    "courses_completed",
    "policies_acknowledged",
    "content_published",
    "kudos_received",
    "colleague_sharers",  # distinct colleagues who shared this advocate's content
    "points_lifetime",
]
COUNTER_OF_KIND: dict[Kind, Counter] = {
    Kind.SHARE_MADE: "shares",
    Kind.VERIFIED_SHARE: "verified_shares",
    Kind.UNIQUE_CLICK: "unique_clicks",
    Kind.LEAD: "leads",
    Kind.SALE: "sales",
    Kind.APPLICATION: "applications",
    Kind.HIRE: "hires",
    Kind.COURSE_COMPLETED: "courses_completed",
    Kind.POLICY_ACKNOWLEDGED: "policies_acknowledged",
    Kind.CONTENT_PUBLISHED: "content_published",
    Kind.KUDOS_RECEIVED: "kudos_received",
}
COLLEAGUE_SHARERS: Counter = "colleague_sharers"


class NotReversible(Conflict):
    """Only what scoring gave can be reversed: not a reversal, a spending, a refund or an expiry.
    The request is valid; the entry it names is of a kind that forbids it."""

    title = "Entry not reversible"
    type_slug = "not-reversible"


# --- ids --------------------------------------------------------------------------------------


def stable_id(*parts: str) -> str:
    """A deterministic id: the same inputs always give the same id, so retries collide."""
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def entry_id(org: str, source_event_id: str, kind: str) -> str:
    return stable_id("entry", org, source_event_id, kind)


def utc(at: datetime) -> datetime:
    """Event times without a zone are taken as UTC."""
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def day_key(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d")


# --- what events score -----------------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    """An event to score: who, what kind, from which event, when, and what it is about."""

    org: str
    advocate_id: str
    kind: Kind
    source_event_id: str
    source_event_type: str
    occurred_at: datetime
    reason: str
    ref: str | None = None
    content_id: str | None = None
    share_id: str | None = None
    tags: tuple[str, ...] = ()
    team: str | None = None
    course_id: str | None = None


def _scored(event: Event[Any], advocate_id: str, kind: Kind, at: datetime, reason: str) -> Scored:
    """What `event` scores: its organisation, id and type are the entry's provenance."""
    return Scored(event.tenant, advocate_id, kind, event.id, event.type, utc(at), reason)


def share_made(event: Event[ShareMade]) -> Scored:
    d = event.data
    scored = _scored(event, d.advocate_id, Kind.SHARE_MADE, d.shared_at, "share made")
    return replace(
        scored, ref=d.share_id, content_id=d.content_id, share_id=d.share_id, tags=tuple(d.tags), team=d.team
    )


def click_scores(event: Event[ClickRecorded], *, verifies: bool) -> list[Scored]:
    """A click scores its share's verification (the share's first real click) and, if unique,
    itself. Bot and self clicks, and those of an advocate without tracking consent, score nothing
    (no rule can lift that): see `counts`."""
    d = event.data
    click = replace(
        _scored(event, d.advocate_id, Kind.UNIQUE_CLICK, d.clicked_at, "unique click"),
        ref=d.click_id,
        content_id=d.content_id,
        share_id=d.share_id,
        tags=tuple(d.tags),
        team=d.team,
    )
    verified = replace(
        click, kind=Kind.VERIFIED_SHARE, reason="verified share (first real click)", ref=d.share_id
    )
    return ([verified] if verifies else []) + ([click] if d.unique else [])


def counts(click: ClickRecorded) -> bool:
    return click.tracked and not (click.bot or click.self_click)


def conversion(event: Event[C], kind: Kind) -> Scored | None:
    """A lead, sale, application or hire credits the advocate it is attributed to (an
    unattributed one, nobody)."""
    d = event.data
    if d.advocate_id is None:
        return None
    scored = _scored(event, d.advocate_id, kind, d.converted_at, str(kind))
    return replace(scored, ref=d.conversion_id, content_id=d.content_id, share_id=d.share_id)


def course_completed(event: Event[CourseCompleted]) -> Scored:
    d = event.data
    scored = _scored(event, d.advocate_id, Kind.COURSE_COMPLETED, event.time, "course completed")
    return replace(scored, ref=d.course_id, course_id=d.course_id)


def policy_acknowledged(event: Event[PolicyAcknowledged]) -> Scored:
    d = event.data
    reason = f"policy v{d.policy_version} acknowledged"
    scored = _scored(event, d.advocate_id, Kind.POLICY_ACKNOWLEDGED, event.time, reason)
    return replace(scored, ref=f"policy:{d.policy_version}")


def content_published(event: Event[ContentPublished]) -> Scored | None:
    """Own content published scores its author (content without one, nobody)."""
    d = event.data
    if d.author_advocate_id is None:
        return None
    scored = _scored(event, d.author_advocate_id, Kind.CONTENT_PUBLISHED, event.time, "own content published")
    return replace(scored, ref=d.content_id, content_id=d.content_id, tags=tuple(d.tags))


def kudos_received(org: str, receiver: str, kudos_id: str, at: datetime) -> Scored:
    return Scored(
        org, receiver, Kind.KUDOS_RECEIVED, kudos_id, KUDOS_EVENT_TYPE, at, "kudos received", ref=kudos_id
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


def is_capped(rules: Rules, kind: Kind, points: int) -> bool:
    return kind in rules.capped_kinds and points > 0


# --- the ledger ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerEntry:
    """One movement of points. `balance_delta` and `lifetime_delta` say what it does to the
    account (spending lowers the balance only); `periods` are the boards it counts on."""

    id: str
    org: str
    advocate_id: str
    kind: str
    points: int
    reason: str
    source_event_id: str
    source_event_type: str
    occurred_at: datetime
    created_at: datetime
    balance_delta: int
    lifetime_delta: int
    projected: bool = False
    ref: str | None = None
    periods: list[str] = field(default_factory=list)
    counter: str | None = None
    counter_delta: int = 1
    team: str | None = None
    content_id: str | None = None
    course_id: str | None = None
    # How a scoring entry was scored:
    uncapped_points: int | None = None
    base_points: int | None = None
    multiplier: float | None = None
    campaign_ids: list[str] = field(default_factory=list)
    rules_version: int | None = None
    # A reversal's:
    reverses: str | None = None
    requested_by: str | None = None


def scored_entry(
    item: Scored, scoring: Scoring, points: int, *, rules: Rules, version: int, team: str | None, at: datetime
) -> LedgerEntry:
    """The entry of a scored event: `points` is what the caps left of the scoring."""
    return LedgerEntry(
        id=entry_id(item.org, item.source_event_id, item.kind),
        org=item.org,
        advocate_id=item.advocate_id,
        kind=str(item.kind),
        points=points,
        balance_delta=points,
        lifetime_delta=points,
        uncapped_points=scoring.points,
        base_points=scoring.base,
        multiplier=scoring.multiplier,
        campaign_ids=list(scoring.campaign_ids),
        rules_version=version,
        reason=item.reason,
        source_event_id=item.source_event_id,
        source_event_type=item.source_event_type,
        ref=item.ref,
        content_id=item.content_id,
        course_id=item.course_id,
        team=team,
        occurred_at=item.occurred_at,
        periods=period_keys(item.occurred_at, rules.contests_covering(item.occurred_at)),
        counter=COUNTER_OF_KIND[item.kind],
        counter_delta=1,
        created_at=at,
    )


def reversal(original: LedgerEntry, *, reason: str, by: str, at: datetime) -> LedgerEntry:
    """A compensating entry that takes back what `original` gave, on the same boards."""
    if original.kind not in [str(k) for k in SCORING_KINDS]:
        raise NotReversible(f"a {original.kind} entry cannot be reversed")
    source = f"entry:{original.id}"
    return LedgerEntry(
        id=entry_id(original.org, source, Kind.REVERSAL),
        org=original.org,
        advocate_id=original.advocate_id,
        kind=str(Kind.REVERSAL),
        points=-original.points,
        balance_delta=-original.points,
        lifetime_delta=-original.points,
        reason=reason,
        reverses=original.id,
        source_event_id=source,
        source_event_type="chorus.ledger.reversal",
        requested_by=by,
        ref=original.ref,
        team=original.team,
        occurred_at=original.occurred_at,
        periods=list(original.periods),
        counter=original.counter,
        counter_delta=-1,
        created_at=at,
    )


def spending(
    org: str, advocate_id: str, redemption_id: str, cost: int, reward: str, at: datetime
) -> LedgerEntry:
    """The entry of points spent on a redemption (the account was debited in the same step)."""
    reason = f"redeemed {reward}"
    return projected(_redemption_entry(org, advocate_id, redemption_id, Kind.REDEMPTION, -cost, reason, at))


def refund(
    org: str, advocate_id: str, redemption_id: str, cost: int, reward: str, at: datetime
) -> LedgerEntry:
    """The entry that gives back the points of a rejected redemption."""
    reason = f"refund: {reward} rejected"
    return _redemption_entry(org, advocate_id, redemption_id, Kind.REFUND, cost, reason, at)


def _redemption_entry(
    org: str,
    advocate_id: str,
    redemption_id: str,
    kind: Kind,
    points: int,
    reason: str,
    at: datetime,
) -> LedgerEntry:
    source = f"redemption:{redemption_id}"
    return LedgerEntry(
        id=entry_id(org, source, kind),
        org=org,
        advocate_id=advocate_id,
        kind=str(kind),
        points=points,
        balance_delta=points,
        lifetime_delta=0,
        reason=reason,
        source_event_id=source,
        source_event_type=REDEEMED_EVENT_TYPE,
        ref=redemption_id,
        occurred_at=at,
        created_at=at,
    )


def expiry(org: str, advocate_id: str, source_event_id: str, balance: int, at: datetime) -> LedgerEntry:
    """The entry of a leaver's balance expiring. Should the balance have fallen meanwhile (a
    redemption), projecting it takes the balance to zero and writes off the difference."""
    source = f"leaver:{source_event_id}"
    return LedgerEntry(
        id=entry_id(org, source, Kind.EXPIRY),
        org=org,
        advocate_id=advocate_id,
        kind=str(Kind.EXPIRY),
        points=-balance,
        balance_delta=-balance,
        lifetime_delta=0,
        reason="left the organisation: points expired",
        source_event_id=source,
        source_event_type="chorus.advocate.updated",
        occurred_at=at,
        created_at=at,
    )


def projected(entry: LedgerEntry) -> LedgerEntry:
    return replace(entry, projected=True)


@dataclass(frozen=True)
class AccountChange:
    """What an entry does to its account, besides balance and lifetime: counters (`$inc`
    paths) and courses done (`$addToSet`)."""

    inc: dict[str, int]
    add_to_set: dict[str, Any]


def account_change(entry: LedgerEntry) -> AccountChange:
    inc: dict[str, int] = {}
    add_to_set: dict[str, Any] = {}
    if entry.counter:
        inc[f"counters.{entry.counter}"] = entry.counter_delta
    if entry.kind == Kind.CONTENT_PUBLISHED:
        start, _ = quarter_bounds(entry.occurred_at)
        inc[f"posts.{quarter_of(start)}"] = entry.counter_delta
    if entry.kind == Kind.COURSE_COMPLETED and entry.course_id:
        add_to_set["courses"] = entry.course_id
    return AccountChange(inc, add_to_set)


def granted(entry: LedgerEntry) -> list[Event[RewardGranted]]:
    """The chorus.reward.granted of a new ledger entry, to queue with it: none for an entry of no
    points, nor for spending and refunds (their events are chorus.reward.redeemed)."""
    if not entry.points or entry.kind in (Kind.REDEMPTION, Kind.REFUND):
        return []
    data = RewardGranted(
        entry_id=entry.id,
        advocate_id=entry.advocate_id,
        points=entry.points,
        reason=entry.reason,
        source_event_id=entry.source_event_id,
        source_event_type=entry.source_event_type,
        granted_at=entry.created_at,
    )
    return [Event.create(data, tenant=entry.org, source=SOURCE, event_id=entry.id, subject=entry.advocate_id)]


@dataclass(frozen=True)
class ShareSeen:
    """A share as the caps see it: what it and its clicks earned so far, and its team."""

    points: int
    team: str | None


# --- accounts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    balance: int = 0
    lifetime: int = 0
    written_off: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    badges: list[str] = field(default_factory=list)
    courses: list[str] = field(default_factory=list)
    posts: dict[str, int] = field(default_factory=dict)  # own content published, per quarter
