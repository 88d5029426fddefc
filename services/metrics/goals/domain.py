"""Rules of the goals: what a goal may be, where its value comes from, and its forecast."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from services.metrics.projections.domain import ALL, COUNTERS
from shared.errors import InvalidInput

ON_TRACK, AT_RISK, BEHIND, ACHIEVED = "on_track", "at_risk", "behind", "achieved"
AT_RISK_FROM = 0.8  # a forecast within 80% of the target is "at risk", below that "behind"
CUMULATIVE_METRICS = (*COUNTERS, "emv")
PROGRAM_METRICS = ("active_advocates", "enrolled", "active_ratio", "training_completion")
SURVEY_METRICS = ("nps", "average")


@dataclass(frozen=True)
class Goal:
    id: str
    org: str
    name: str
    metric: str
    target: float
    starts_on: date
    ends_on: date
    filter_dim: str | None
    filter_key: str | None
    survey_id: str | None
    question_id: str | None
    created_at: datetime
    created_by: str
    request_key: str | None = None  # its create's Idempotency-Key (shared.ids.made_before)


@dataclass(frozen=True)
class Snapshot:
    """A goal's value on one day, and how many advocates were enrolled then."""

    date: str
    value: float
    enrolled: int


@dataclass(frozen=True)
class GoalProgress:
    value: float
    progress: float  # value / target
    forecast: float
    status: str


def add_months(start: date, months: int) -> date:
    month0 = start.month - 1 + months
    year, month = start.year + month0 // 12, month0 % 12 + 1
    for day in (start.day, 30, 29, 28):
        try:
            return date(year, month, day)
        except ValueError:
            continue
    raise ValueError("unreachable")


def period(
    today: date, horizon_months: int | None, starts_on: date | None, ends_on: date | None
) -> tuple[date, date]:
    """A horizon of months from today, or two dates in order."""
    if horizon_months is not None:
        if starts_on or ends_on:
            raise InvalidInput.field("horizon_months", "give a horizon or dates, not both")
        return today, add_months(today, horizon_months) - timedelta(days=1)
    if starts_on and ends_on:
        if ends_on < starts_on:
            raise InvalidInput.field("ends_on", "must not be before starts_on")
        return starts_on, ends_on
    raise InvalidInput.field("horizon_months", "give a horizon of 1, 3 or 6 months, or starts_on and ends_on")


def check_filter(metric: str, filter_dim: str | None, filter_key: str | None) -> None:
    if (filter_dim is None) != (filter_key is None):
        raise InvalidInput.field("filter_key", "filter_dim and filter_key go together")
    # Program and survey figures are the organisation's only: a filter would be ignored.
    if filter_dim is not None and metric in (*PROGRAM_METRICS, *SURVEY_METRICS):
        raise InvalidInput.field("filter_dim", f"{metric} is measured for the whole organisation, unfiltered")


def check_survey_target(metric: str, survey_id: str | None, question_id: str | None) -> None:
    if metric in SURVEY_METRICS and (not survey_id or not question_id):
        raise InvalidInput.field("survey_id", "a survey goal names survey_id and question_id")


def check_survey_question(metric: str, questions: list[dict[str, str]], question_id: str | None) -> None:
    """A survey goal measures a question of the survey of its kind: nps, or a rating's average."""
    wanted = "nps" if metric == "nps" else "rating"
    if not any(q["id"] == question_id and q["type"] == wanted for q in questions):
        raise InvalidInput.field("question_id", f"must name a {wanted} question of the survey")


def counted_days(goal: Goal, today: date) -> tuple[str, str] | None:
    """The days of a funnel goal counted so far (None: it has not started)."""
    end = min(goal.ends_on, today)
    if end < goal.starts_on:
        return None
    return goal.starts_on.isoformat(), end.isoformat()


def funnel_scope(goal: Goal) -> tuple[str, list[str] | None]:
    """The projection rows a funnel goal counts: (dimension, keys)."""
    if goal.filter_dim and goal.filter_key is not None:
        return goal.filter_dim, [goal.filter_key]
    return ALL, None


def program_value(metric: str, program: dict[str, Any]) -> float:
    return float(program["active" if metric == "active_advocates" else metric])


def survey_value(goal: Goal, results: dict[str, Any]) -> float:
    for q in results["questions"]:
        if q["id"] == goal.question_id:
            return float(q.get(goal.metric) or 0.0)
    return 0.0


def goal_progress(
    *, cumulative: bool, value: float, target: float, starts_on: date, ends_on: date, today: date
) -> GoalProgress:
    """A linear forecast: a cumulative metric keeps its pace to the end; a ratio stays where it is."""
    total_days = (ends_on - starts_on).days + 1
    elapsed = min(max((today - starts_on).days + 1, 1), total_days)
    forecast = value * total_days / elapsed if cumulative else value
    # A target near zero (any positive number is one) would make the ratio infinite, which JSON
    # cannot carry: the largest float says "far past it".
    progress = min(value / target, sys.float_info.max) if target else 1.0
    if value >= target:
        status = ACHIEVED
    elif forecast >= target:
        status = ON_TRACK
    elif forecast >= AT_RISK_FROM * target:
        status = AT_RISK
    else:
        status = BEHIND
    return GoalProgress(round(value, 6), round(progress, 6), round(forecast, 6), status)


def progress_of(goal: Goal, value: float, today: date) -> GoalProgress:
    return goal_progress(
        cumulative=goal.metric in CUMULATIVE_METRICS,
        value=value,
        target=goal.target,
        starts_on=goal.starts_on,
        ends_on=goal.ends_on,
        today=today,
    )


def running(goal: Goal, today: date) -> bool:
    return goal.starts_on <= today <= goal.ends_on
