"""Rewards rules, pure: the catalogue's stock and budget, and a redemption's life.

A redemption takes a unit of stock and the reward's price from its budget, then the points, while
it is `placing` (written, but shown to no one); it is then requested, then approved (which sends
the fulfilment webhook) or rejected (which gives the points and the unit back), and an approved
one is fulfilled. Statuses only move forward.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.recognition.points.domain import SOURCE, stable_id
from shared.errors import Conflict
from shared.events import Event
from shared.events.recognition import RewardRedeemed

# The engine's target of every fulfilment delivery: an organisation has one fulfilment webhook.
FULFILMENT = "fulfilment"


class InsufficientPoints(Conflict):
    title = "Not enough points"
    type_slug = "insufficient-points"


class OutOfStock(Conflict):
    title = "Out of stock"
    type_slug = "out-of-stock"


class OverBudget(Conflict):
    title = "Over budget"
    type_slug = "over-budget"


@dataclass(frozen=True)
class Offer:
    """What an admin offers: a reward's terms. A null stock or budget means unlimited."""

    name: str
    description: str
    cost: int
    stock: int | None
    price_cents: int
    budget_cents: int | None
    currency: str


@dataclass(frozen=True)
class Reward:
    """A reward of the catalogue: its terms, what is left (`stock`, `budget_left_cents`) and
    what was taken."""

    id: str
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
    stock_taken: int = 0
    spent_cents: int = 0


def new_reward(reward_id: str, offer: Offer, at: datetime) -> Reward:
    return Reward(
        reward_id,
        offer.name,
        offer.description,
        offer.cost,
        offer.stock,
        offer.price_cents,
        offer.budget_cents,
        offer.budget_cents,
        offer.currency,
        active=True,
        created_at=at,
    )


def check_offered(reward: Reward) -> None:
    if not reward.active:
        raise Conflict("this reward is no longer offered")


def refusal(reward: Reward) -> Conflict:
    """Why a reservation failed, from the reward as it is now: no stock left, or no budget."""
    if reward.stock is not None and reward.stock < 1:
        return OutOfStock(f"{reward.name} is out of stock")
    return OverBudget(f"the budget for {reward.name} is spent")


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


# Where a redemption keeps who moved it to each status it can be moved to (`approved_by`, ...).
MOVED_BY: dict[RedemptionStatus, str] = {
    target: f"{target}_by" for targets in NEXT_STATUSES.values() for target in targets
}


def can_move(current: RedemptionStatus, target: RedemptionStatus) -> bool:
    return target in NEXT_STATUSES[current]


def sources_of(target: RedemptionStatus) -> list[str]:
    """Every status a redemption may reach `target` from (the compare-and-set of a move)."""
    return [str(s) for s, targets in NEXT_STATUSES.items() if target in targets]


@dataclass(frozen=True)
class Redemption:
    """A redemption. `placing` while its stock and points are being taken (see
    RewardService.request_redemption); `refund_pending` and `webhook_pending` are what a move left
    to do in other documents (the refund of a rejected one, the webhook of an approved one);
    `needs_relay` says some is left, for the relay to finish should the request not."""

    id: str
    org: str
    advocate_id: str
    reward_id: str
    reward_name: str
    cost: int
    price_cents: int
    status: RedemptionStatus
    created_at: datetime
    updated_at: datetime
    note: str | None = None
    refund_pending: bool = False
    webhook_pending: bool = False
    needs_relay: bool = False
    placing: bool = False


def placing(redemption_id: str, org: str, advocate_id: str, reward: Reward, at: datetime) -> Redemption:
    """A redemption about to take its stock and points: the relay finishes it, should the request
    not (`needs_relay`)."""
    return Redemption(
        redemption_id,
        org,
        advocate_id,
        reward.id,
        reward.name,
        reward.cost,
        reward.price_cents,
        RedemptionStatus.REQUESTED,
        at,
        at,
        needs_relay=True,
        placing=True,
    )


def placed(redemption: Redemption, at: datetime) -> Redemption:
    """The redemption once its stock and points are taken: requested, shown, nothing left to do."""
    return replace(redemption, placing=False, needs_relay=False, updated_at=at)


@dataclass(frozen=True)
class Move:
    """A status change as it is written: from which statuses, and what it leaves to do."""

    sources: list[str]
    target: RedemptionStatus
    note: str | None
    refund: bool
    webhook: bool


def move(current: Redemption, target: RedemptionStatus, note: str | None) -> Move:
    if not can_move(current.status, target):
        raise Conflict(f"a {current.status} redemption cannot become {target}")
    return Move(
        sources_of(target),
        target,
        note or None,
        refund=target is RedemptionStatus.REJECTED,
        webhook=target is RedemptionStatus.APPROVED,
    )


def redeemed(redemption: Redemption, status: RedemptionStatus) -> Event[RewardRedeemed]:
    """The chorus.reward.redeemed of a redemption reaching `status`, to queue with that move."""
    data = RewardRedeemed(
        redemption_id=redemption.id,
        advocate_id=redemption.advocate_id,
        reward_id=redemption.reward_id,
        points=redemption.cost,
        status=status,
    )
    return Event.create(
        data,
        tenant=redemption.org,
        source=SOURCE,
        event_id=stable_id("redeemed", redemption.id, str(status)),
        subject=redemption.advocate_id,
    )


def fulfilment_request(redemption: Redemption) -> tuple[str, dict[str, Any]]:
    """The fulfilment webhook of an approved redemption: its delivery id (stable, so it is queued
    once whatever the retries) and its payload."""
    delivery_id = stable_id("delivery", redemption.id, "approved")
    return delivery_id, {
        "type": "chorus.redemption.approved",
        "delivery_id": delivery_id,
        "org": redemption.org,
        "redemption_id": redemption.id,
        "reward_id": redemption.reward_id,
        "reward_name": redemption.reward_name,
        "advocate_id": redemption.advocate_id,
        "points": redemption.cost,
    }
