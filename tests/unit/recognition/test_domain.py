from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.recognition.badges import domain as badges
from services.recognition.engagement import domain as engagement
from services.recognition.leaderboards import domain as leaderboards
from services.recognition.leaderboards.domain import Period
from services.recognition.points import domain as points
from services.recognition.rewards import domain as rewards
from services.recognition.rewards.schemas import FulfilmentRequest
from services.recognition.rules import domain as rules_domain
from services.recognition.rules.domain import Campaign, Kind, Rules
from shared.fields import AS_STORED
from tests.unit.recognition.ob3 import credential_errors

AT = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)


def test_defaults_give_points_for_every_scoring_kind() -> None:
    rules = Rules()
    assert all(rules.base_points(k) > 0 for k in rules_domain.SCORING_KINDS)
    assert rules_domain.score(rules, Kind.SHARE_MADE, at=AT).points == 10


def test_the_highest_matching_campaign_multiplier_applies() -> None:
    rules = Rules(
        campaigns=[
            Campaign(
                id="x2",
                name="double",
                starts_at=AT - timedelta(days=1),
                ends_at=AT + timedelta(days=1),
                multiplier=2.0,
            ),
            Campaign(
                id="x3-ai",
                name="triple on ai",
                starts_at=AT - timedelta(days=1),
                ends_at=AT + timedelta(days=1),
                multiplier=3.0,
                tags=["ai"],
            ),
            Campaign(
                id="over",
                name="ended",
                starts_at=AT - timedelta(days=9),
                ends_at=AT - timedelta(days=8),
                multiplier=10.0,
            ),
        ]
    )
    assert rules_domain.score(rules, Kind.SHARE_MADE, at=AT).points == 20
    tagged = rules_domain.score(rules, Kind.SHARE_MADE, at=AT, tags=["ai"])
    assert tagged.points == 30
    assert set(tagged.campaign_ids) == {"x2", "x3-ai"}


def test_campaign_kinds_restrict_the_multiplier() -> None:
    rules = Rules(
        campaigns=[
            Campaign(
                id="leads",
                name="leads",
                starts_at=AT,
                ends_at=AT + timedelta(hours=1),
                multiplier=2.0,
                kinds=[Kind.LEAD],
            )
        ]
    )
    assert rules_domain.score(rules, Kind.SHARE_MADE, at=AT).points == 10
    assert rules_domain.score(rules, Kind.LEAD, at=AT).points == 100


def test_caps_grant_only_what_fits_and_never_negative() -> None:
    assert points.capped(10, daily_used=0, daily_cap=25, share_used=10, share_cap=12) == 2
    assert points.capped(10, daily_used=20, daily_cap=25, share_used=0, share_cap=None) == 5
    assert points.capped(10, daily_used=30, daily_cap=25, share_used=0, share_cap=None) == 0
    assert points.capped(10, daily_used=0, daily_cap=None, share_used=0, share_cap=None) == 10


def test_rules_refuse_bad_values() -> None:
    with pytest.raises(ValidationError):
        Rules(points={Kind.REDEMPTION: 5})
    with pytest.raises(ValidationError):
        Campaign(id="bad", name="bad", starts_at=AT, ends_at=AT, multiplier=2)
    with pytest.raises(ValidationError):
        Rules.model_validate({"unknown": 1})


def test_a_cap_has_a_bound_that_a_stored_rule_set_before_it_escapes() -> None:
    limit = rules_domain.MAX_CAP
    assert Rules(daily_cap=limit, per_share_cap=limit).daily_cap == limit
    for cap in ("daily_cap", "per_share_cap"):
        with pytest.raises(ValidationError, match=f"must be at most {limit}"):
            Rules.model_validate({cap: limit + 1})
        # A version published before the bound stays readable: rule versions are never edited.
        assert getattr(Rules.model_validate({cap: 10**29}, context=AS_STORED), cap) == 10**29
        branches = Rules.model_json_schema()["properties"][cap]["anyOf"]
        assert {"type": "integer", "minimum": 0, "maximum": limit} in branches


def test_period_keys_cover_week_month_quarter_all_and_contests() -> None:
    assert leaderboards.period_keys(AT, ("spring",)) == [
        "week:2026-W48",
        "month:2026-11",
        "quarter:2026-Q4",
        "all",
        "contest:spring",
    ]
    assert leaderboards.period_key(Period.WEEK, datetime(2027, 1, 1, tzinfo=UTC)) == "week:2026-W53"
    assert leaderboards.quarter_bounds(AT) == (
        datetime(2026, 10, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )


def test_equal_points_share_a_rank_across_pages() -> None:
    assert leaderboards.competition_ranks([50, 40, 40, 10]) == [1, 2, 2, 4]
    assert leaderboards.competition_ranks([40, 30], first_position=4, previous=(40, 2)) == [2, 5]


def test_team_points_are_normalised_per_active_advocate() -> None:
    assert leaderboards.normalised(90, 3) > leaderboards.normalised(600, 30)
    assert leaderboards.normalised(10, 0) == 10


def test_badges_are_earned_once_when_the_threshold_is_reached() -> None:
    definitions = badges.builtin_badges(Rules(thought_leader_colleagues=2), "https://img")
    earned = badges.badges_earned(definitions, {"shares": 10, "colleague_sharers": 2}, held={"first-share"})
    assert {b.badge_id for b in earned} == {"shares-10", "thought-leader"}


def test_entry_ids_are_stable_per_event_and_kind() -> None:
    assert points.entry_id("o", "e1", "lead") == points.entry_id("o", "e1", "lead")
    assert points.entry_id("o", "e1", "lead") != points.entry_id("o", "e1", "sale")
    assert points.entry_id("o", "e1", "lead") != points.entry_id("o2", "e1", "lead")


def _credential() -> dict[str, object]:
    definition = badges.builtin_badges(Rules(), "https://img.example")[0]
    return badges.open_badge_credential(
        definition=definition,
        award_id=badges.award_id("o", "a", "first-share"),
        org="o",
        advocate_id="a",
        awarded_at=AT,
        base_url="https://chorus.example",
    )


def test_credential_validates_against_the_open_badges_3_schema() -> None:
    assert credential_errors(_credential()) == []


def test_schema_refuses_a_credential_without_the_open_badge_type_or_achievement() -> None:
    broken = copy.deepcopy(_credential())
    broken["type"] = ["VerifiableCredential"]
    assert credential_errors(broken)
    broken = copy.deepcopy(_credential())
    del broken["credentialSubject"]["achievement"]["criteria"]  # type: ignore[index, attr-defined]
    assert credential_errors(broken)
    broken = copy.deepcopy(_credential())
    broken["credentialSubject"]["identifier"] = []  # type: ignore[index]
    assert credential_errors(broken)


def test_credential_hides_the_advocate_id_behind_a_salted_hash() -> None:
    assert '"a"' not in str(_credential()).replace("'", '"')


def test_redemption_moves_only_forward() -> None:
    S = rewards.RedemptionStatus
    assert rewards.can_move(S.REQUESTED, S.APPROVED)
    assert rewards.can_move(S.APPROVED, S.FULFILLED)
    assert not rewards.can_move(S.REQUESTED, S.FULFILLED)
    assert not rewards.can_move(S.FULFILLED, S.REJECTED)


def test_goal_progress() -> None:
    assert engagement.goal_progress(engagement.GoalKind.AUDIENCE, 1000, value=1200).achieved
    assert not engagement.goal_progress(engagement.GoalKind.POSTS_THIS_QUARTER, 3, value=2).achieved
    assert engagement.goal_progress(engagement.GoalKind.TOP_ON_TAG, 1, value=1).achieved
    assert not engagement.goal_progress(engagement.GoalKind.TOP_ON_TAG, 1, value=0).achieved


def test_the_fulfilment_webhook_sends_what_its_document_says() -> None:
    # The body is written by the domain and documented by FulfilmentRequest (the recognition
    # document's `webhooks`): a field added, renamed or retyped on one side fails here.
    at = datetime(2026, 12, 7, tzinfo=UTC)
    redemption = rewards.Redemption(
        "r1", "acme", "adv-1", "gift", "A gift card", 500, 2500, rewards.RedemptionStatus.APPROVED, at, at
    )
    delivery_id, body = rewards.fulfilment_request(redemption)
    documented = FulfilmentRequest.model_validate(body, strict=True)
    assert set(body) == set(FulfilmentRequest.model_fields)
    assert documented.delivery_id == delivery_id and documented.points == 500


def test_an_erased_advocate_leaves_the_excluded_ones_and_nothing_else_changes() -> None:
    rules = Rules(excluded_advocate_ids=["sam", "zed"], excluded_content_ids=["c1"])

    kept = rules_domain.without_advocate(rules, "sam")

    assert kept is not None
    assert kept.excluded_advocate_ids == ["zed"]
    assert kept.model_copy(update={"excluded_advocate_ids": ["sam", "zed"]}) == rules
    assert rules_domain.without_advocate(rules, "ann") is None
