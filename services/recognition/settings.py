"""Recognition settings: the shared ones plus the relay and webhook timings."""

from __future__ import annotations

from pydantic import Field

from shared.settings import ChorusSettings


class RecognitionSettings(ChorusSettings):
    relay_every_s: float = Field(
        2.0, description="how often unfinished ledger entries and events are retried"
    )
    relay_grace_s: float = Field(
        5.0, description="age after which an unfinished entry is the relay's to finish"
    )
    leaderboard_max_age_s: float = Field(
        5.0, description="how old the standings a leaderboard is served from may get before a rebuild"
    )
    webhook_every_s: float = Field(1.0, description="how often due webhook deliveries are attempted")
    webhook_timeout_s: float = 5.0
    webhook_backoff_base_s: float = Field(5.0, description="first retry delay; doubles each attempt")
    webhook_max_attempts: int = 10
    badge_image_base_url: str = "https://static.chorus.dev/badges"
