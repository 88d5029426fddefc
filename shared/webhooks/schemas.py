"""What the webhook delivery APIs of every service show of an attempt."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class AttemptOut(BaseModel):
    at: datetime
    status: int | None = Field(description="the HTTP status, or null when no response came")
    error: str | None = Field(description="why no response came (timeout, refused, ...)")
    duration_ms: int
