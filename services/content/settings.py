"""The content service's settings: the shared CHORUS_* settings plus a few of its own."""

from __future__ import annotations

from pydantic import Field

from shared.settings import ChorusSettings


class ContentSettings(ChorusSettings):
    content_sweep_interval_s: float = Field(
        60.0,
        gt=0,
        description="how often the sweeper archives expired content (CHORUS_CONTENT_SWEEP_INTERVAL_S)",
    )
