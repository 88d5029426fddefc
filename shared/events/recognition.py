"""Events on `chorus.recognition` (key: advocate id)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from shared.events.envelope import EventData, event
from shared.events.personal import PERSON
from shared.events.topics import RECOGNITION


@event("chorus.reward.granted", topic=RECOGNITION, key="advocate_id")
class RewardGranted(EventData):
    """Points added to (or, for a correction, taken from) an advocate's ledger."""

    entry_id: str
    advocate_id: Annotated[str, PERSON]
    points: int
    reason: str
    source_event_id: str
    source_event_type: str
    granted_at: datetime


@event("chorus.badge.awarded", topic=RECOGNITION, key="advocate_id")
class BadgeAwarded(EventData):
    award_id: str
    advocate_id: Annotated[str, PERSON]
    badge_id: str
    name: str
    awarded_at: datetime


@event("chorus.reward.redeemed", topic=RECOGNITION, key="advocate_id")
class RewardRedeemed(EventData):
    redemption_id: str
    advocate_id: Annotated[str, PERSON]
    reward_id: str
    points: int
    status: str
