"""What colleagues see of an advocate beside their id, the same in every service that shows it
(authors in the library, leaderboards, kudos, badges): nothing unless the advocate lets colleagues
see them. Sharing announces the name only then, and each service keeps it in its own projection
of the advocates, one document per advocate under `joined_id(org, advocate_id)`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shared.mongo import joined_id
from shared.tenancy import TenantCollection


@dataclass(frozen=True)
class Name:
    display_name: str | None = None
    avatar_url: str | None = None


NO_NAME = Name()


async def visible_names(advocates: TenantCollection, advocate_ids: Iterable[str]) -> dict[str, Name]:
    """The names of those of these advocates who let colleagues see them, from a service's
    projection of the advocates (`advocate_id`, `display_name`, `avatar_url`)."""
    ids = [joined_id(advocates.org, a) for a in set(advocate_ids)]
    if not ids:
        return {}
    found = advocates.find(
        {"_id": {"$in": ids}, "display_name": {"$ne": None}},
        {"advocate_id": 1, "display_name": 1, "avatar_url": 1},
    )
    return {d["advocate_id"]: Name(d["display_name"], d.get("avatar_url")) async for d in found}
