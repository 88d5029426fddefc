"""What every recognition module's routes share: who may call, page parameters, the
Idempotency-Key header (its use: `once: Idempotent`, shared/idempotency.py).

Each module has its own router (`<module>/api.py`); main.py includes them all under /v1.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated

from fastapi import Depends, Query
from pydantic import BaseModel, ConfigDict

from shared.auth import ANY_MEMBER, API_KEY_ROLE, Principal, Role, require
from shared.pagination import Cursor as Cursor  # the one cursor parameter, for the routes

TAGS: list[str | Enum] = ["recognition"]
Member = Annotated[Principal, Depends(require(*ANY_MEMBER))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
Fulfiller = Annotated[Principal, Depends(require(Role.ADMIN, API_KEY_ROLE))]
Limit = Annotated[int, Query(ge=1, le=200, description="page size")]


class RequestBody(BaseModel):
    """A request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")
