"""HTTP models of the API keys."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from shared.api_keys import DEFAULT_SCOPES, SCOPES
from shared.clock import AwareRequestTime
from shared.fields import Line
from shared.pagination import Page
from shared.schemas import RequestBody, ResponseBody

Scope = StrEnum("Scope", {name: name for name in SCOPES})  # type: ignore[misc]
SCOPE_LIST = "; ".join(f"`{name}`: {what}" for name, what in SCOPES.items())


class ApiKeyIn(RequestBody):
    name: Line = Field(min_length=1, max_length=100)
    scopes: list[Scope] = Field(
        default_factory=lambda: [Scope(s) for s in DEFAULT_SCOPES],
        min_length=1,
        description=f"what the key may do (default: {', '.join(DEFAULT_SCOPES)}). {SCOPE_LIST}",
    )
    expires_at: AwareRequestTime | None = Field(
        None, description="after this the key is refused; none: never"
    )


class ApiKeyOut(ResponseBody):
    key_id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None = None
    scopes: list[str] = Field(default_factory=list)
    expires_at: datetime | None = None


class NewApiKeyOut(ApiKeyOut):
    api_key: str = Field(description="shown only in this response; store it now")


class ApiKeyPage(Page[ApiKeyOut]):
    pass
