"""Erasure's rules: who may erase an advocate, and what their shares are attributed to after."""

from __future__ import annotations

import secrets

from shared.auth import Principal
from shared.errors import Forbidden
from shared.events.advocates import AdvocateErased


def check_may_erase(principal: Principal, advocate_id: str) -> None:
    if advocate_id != principal.sub and not principal.is_admin:
        raise Forbidden("only the advocate themself or an admin may erase an advocate")


def erases_someone_else(principal: Principal, advocate_id: str) -> bool:
    """An admin erasing another person must name someone sharing knows (else a 404)."""
    return principal.is_admin and advocate_id != principal.sub


def erased(principal: Principal, advocate_id: str) -> AdvocateErased:
    return AdvocateErased(advocate_id=advocate_id, requested_by=principal.sub)


def new_tombstone() -> str:
    """A fresh random id per erasure: the shares stay countable but lead to nobody."""
    return f"erased-{secrets.token_hex(8)}"
