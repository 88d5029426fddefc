"""What every recognition module's routes share: who may call, page parameters, idempotency keys.

Each module has its own router (`<module>/api.py`); main.py includes them all under /v1.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request
from pydantic import BaseModel, ConfigDict

from shared.auth import ANY_MEMBER, API_KEY_ROLE, Principal, Role, require
from shared.idempotency import run_once

TAGS: list[str | Enum] = ["recognition"]
Member = Annotated[Principal, Depends(require(*ANY_MEMBER))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
Fulfiller = Annotated[Principal, Depends(require(Role.ADMIN, API_KEY_ROLE))]
Limit = Annotated[int, Query(ge=1, le=200, description="page size")]
Cursor = Annotated[
    str | None, Query(max_length=500, description="opaque; from the previous page's next_cursor")
]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


class Once:
    """Runs a create once per Idempotency-Key (shared/idempotency.py), in the service's database."""

    def __init__(self, request: Request) -> None:
        self.db = request.app.state.runtime.db

    async def __call__(
        self,
        org: str,
        scope: str,
        key: str | None,
        body: Any,
        create: Callable[[], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        result, _ = await run_once(self.db, org=org, scope=scope, key=key, body=body, create=create)
        return result


Idempotent = Annotated[Once, Depends(Once)]


class RequestBody(BaseModel):
    """A request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")
