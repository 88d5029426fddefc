"""What every route of the content service uses: who may call, the body limit, idempotent creates."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request

from services.content.common import Viewer
from shared.auth import ANY_MEMBER, Principal, Role, require
from shared.errors import PayloadTooLarge
from shared.idempotency import run_once

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


async def once(
    request: Request,
    principal: Principal,
    scope: str,
    key: str | None,
    body: Any,
    create: Callable[[], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """Run a create once per Idempotency-Key of the caller (shared/idempotency.py)."""
    response, _ = await run_once(
        request.app.state.runtime.db,
        org=principal.org,
        scope=f"{scope}:{principal.sub}",
        key=key,
        body=body,
        create=create,
    )
    return response
