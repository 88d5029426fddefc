"""What every route of the content service shares: who may call, the
Idempotency-Key header (its use: `once: Idempotent`, shared/idempotency.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.content.common import Viewer
from shared.auth import ANY_MEMBER, Principal, Role, require
from shared.pagination import Limit as Limit  # the page size every list takes

EDITORS = (Role.ADMIN, Role.EDITOR)

Member = Annotated[Principal, Depends(require(*ANY_MEMBER))]
Editor = Annotated[Principal, Depends(require(*EDITORS))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]


def viewer_of(principal: Principal) -> Viewer:
    # Audience attributes from the token; the library puts sharing's profile in their place where
    # it has one (services/content/audience/).
    return Viewer.from_claims(principal.sub, principal.roles, principal.claims)
