"""HTTP models of the API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, get_args

from pydantic import BaseModel, Field

from services.metrics.schemas import Request
from shared.clock import AwareRequestTime

Scope = Literal["conversions:write", "surveys:respond"]


class ApiKeyIn(Request):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[Scope] = Field(
        default_factory=lambda: list(get_args(Scope)),
        min_length=1,
        description="what the key may do (default: both)",
    )
    expires_at: AwareRequestTime | None = Field(
        None, description="after this the key is refused; none: never"
    )


class ApiKeyOut(BaseModel):
    key_id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None = None
    scopes: list[str] = Field(default_factory=list)
    expires_at: datetime | None = None


class NewApiKeyOut(ApiKeyOut):
    api_key: str = Field(description="shown only in this response; store it now")


class ApiKeyPage(BaseModel):
    items: list[ApiKeyOut]
    next_cursor: str | None
