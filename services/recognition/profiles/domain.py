"""Advocate profiles as recognition needs them (team, ranking consent, audience), and erasure.

Recognition keeps its own projection of the advocates that sharing announces. An erased advocate
is remembered only by an unlinkable hash, so that late events about them score nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from services.recognition.points.domain import stable_id
from shared.events.advocates import AdvocateProfile


@dataclass(frozen=True)
class Profile:
    advocate_id: str
    team: str | None
    public_ranking_consent: bool
    audience: int
    active: bool = True  # False for a leaver (their organisation's directory deactivated them)
    # Their name and picture, set only when they let colleagues see them (None otherwise: as
    # sharing announced them).
    display_name: str | None = None
    avatar_url: str | None = None

    @property
    def ranked(self) -> bool:
        """On the live boards: they agreed to be, and they have not left. A leaver keeps their
        points and history; they only drop off the boards others see."""
        return self.public_ranking_consent and self.active


def profile_of(announced: AdvocateProfile) -> Profile:
    """What recognition keeps of an announced profile: its audience is that of all its networks."""
    return Profile(
        announced.advocate_id,
        announced.team,
        announced.public_ranking_consent,
        sum(n.audience_size for n in announced.networks),
        announced.active,
        announced.display_name,
        announced.avatar_url if announced.display_name is not None else None,
    )


def erased_marker(advocate_id: str) -> str:
    return stable_id("erased", advocate_id)


# What an erased advocate's amounts are kept under (the ledger's, the redemptions'): it links to
# nobody, and names no one to project onto an account or a board.
ERASED_PREFIX = "erased-"


def erasure_token() -> str:
    return f"{ERASED_PREFIX}{uuid.uuid4().hex}"


def is_erasure_token(advocate_id: str) -> bool:
    return advocate_id.startswith(ERASED_PREFIX)
