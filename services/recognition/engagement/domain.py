"""Engagement rules, pure: kudos between colleagues and personal goals measured from events.

Each advocate may give a few kudos a week (the rules' allowance), never to themselves; the
receiver scores. A personal goal's progress is read from what the events say: the audience of
the advocate's networks, their own posts this quarter, a course done, or their rank on a tag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from services.recognition.leaderboards.domain import quarter_of
from shared.errors import Conflict, InvalidInput


class AllowanceUsed(Conflict):
    title = "Kudos allowance used"
    type_slug = "kudos-allowance-used"


@dataclass(frozen=True)
class Kudos:
    """Kudos given. `scored` once the receiver's points for it are written (the relay writes them
    should the request not)."""

    id: str
    giver: str | None  # None once the giver is erased
    receiver: str
    message: str
    week: str
    created_at: datetime
    scored: bool = False


def check_receiver(giver: str, receiver: str) -> None:
    if receiver == giver:
        raise InvalidInput.field("to", "kudos are for colleagues, not yourself")


def check_receiver_active(receiver: str, active: bool | None) -> None:
    """Kudos go to active, enrolled colleagues: not to someone recognition has no profile of
    (`active` is None: never enrolled, or erased), nor to one their directory deactivated."""
    if active is None:
        raise InvalidInput.field(
            "to", f"{receiver} is not an enrolled colleague: kudos go to active colleagues"
        )
    if active is False:
        raise InvalidInput.field("to", f"{receiver} has left the organisation: kudos go to active colleagues")


def allowance_used(allowance: int) -> AllowanceUsed:
    return AllowanceUsed(f"you have given your {allowance} kudos this week")


def kudos_allowance_left(given_this_week: int, allowance: int) -> int:
    return max(0, allowance - given_this_week)


# --- personal goals --------------------------------------------------------------------------


class GoalKind(StrEnum):
    AUDIENCE = "audience"  # grow my audience to N
    POSTS_THIS_QUARTER = "posts_this_quarter"  # publish K posts this quarter
    COURSE = "course"  # complete course X
    TOP_ON_TAG = "top_on_tag"  # top contributor on tag T


@dataclass(frozen=True)
class GoalSpec:
    """What an advocate aims at."""

    kind: GoalKind
    target: int
    course_id: str | None = None
    tag: str | None = None


@dataclass(frozen=True)
class Goal:
    id: str
    advocate_id: str
    spec: GoalSpec
    created_at: datetime


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


@dataclass(frozen=True)
class GoalFacts:
    """What the events say about an advocate, as far as their goals need it."""

    at: datetime
    audience: int = 0  # of all their networks (audience goals only)
    posts: dict[str, int] = field(default_factory=dict)  # own content published, per quarter
    courses: list[str] = field(default_factory=list)  # courses completed
    tag_rank: int = 0  # rank by shares on the goal's tag, 0 without any (top-on-tag goals only)


def progress(spec: GoalSpec, facts: GoalFacts) -> GoalProgress:
    """How far a goal is: audience size, posts this quarter, 1 if the course is done, or the rank."""
    if spec.kind is GoalKind.AUDIENCE:
        value = facts.audience
    elif spec.kind is GoalKind.POSTS_THIS_QUARTER:
        value = facts.posts.get(quarter_of(facts.at), 0)
    elif spec.kind is GoalKind.COURSE:
        value = 1 if spec.course_id in facts.courses else 0
    else:
        value = facts.tag_rank
    return goal_progress(spec.kind, spec.target, value=value)
