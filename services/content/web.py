"""What every route of the content service shares: who may call, the body limit, the
Idempotency-Key header (its use: `once: Idempotent`, shared/idempotency.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Query, Request

from services.content.common import Viewer
from shared.auth import ANY_MEMBER, Principal, Role, require
from shared.errors import PayloadTooLarge

EDITORS = (Role.ADMIN, Role.EDITOR)
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key", description="repeat a create safely: the same key replays the first response"
    ),
]
Limit = Annotated[int, Query(ge=1, le=100, description="page size")]

Member = Annotated[Principal, Depends(require(*ANY_MEMBER))]
Editor = Annotated[Principal, Depends(require(*EDITORS))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]


async def limit_body_size(request: Request) -> None:
    """Refuse oversized bodies with 413 before anything is validated or stored."""
    max_bytes: int = request.app.state.settings.content_max_body_bytes
    declared = request.headers.get("content-length", "")
    if (declared.isdigit() and int(declared) > max_bytes) or len(await request.body()) > max_bytes:
        raise PayloadTooLarge(
            f"body: the request body is larger than {max_bytes} bytes",
            errors=[{"field": "body", "message": f"must be at most {max_bytes} bytes"}],
        )


def viewer_of(principal: Principal) -> Viewer:
    # Audience attributes come from the token: this service does not own advocate profiles.
    return Viewer.from_claims(principal.sub, principal.roles, principal.claims)
