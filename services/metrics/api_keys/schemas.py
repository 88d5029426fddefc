"""HTTP models of the API keys."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from services.metrics.schemas import Request


class ApiKeyIn(Request):
    name: str = Field(min_length=1, max_length=100)


class ApiKeyOut(BaseModel):
    key_id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None = None


class NewApiKeyOut(ApiKeyOut):
    api_key: str = Field(description="shown only in this response; store it now")


class ApiKeyPage(BaseModel):
    items: list[ApiKeyOut]
    next_cursor: str | None
