"""The only MongoDB code of the redirect: the visitors seen on each share inside its
organisation's unique-click window, shared by every replica and kept across restarts.

A visitor is kept under a key derived from the organisation, the IP address and the user agent
with the server's secret (`VisitorHasher.seen_key`): no IP address is stored, the key never
leaves this collection (not in any event), it means nothing in another organisation, and a TTL
index deletes it when its window ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple

from pymongo.asynchronous.database import AsyncDatabase

from services.sharing.redirect.domain import Seen
from shared.mongo import Document, IndexSpec, insert_new
from shared.tenancy import Tenants

SEEN = "seen_visitors"

INDEXES: list[IndexSpec] = [
    # A visitor is forgotten when the window their first click opened ends.
    IndexSpec(SEEN, [("expire_at", 1)], options={"expireAfterSeconds": 0}),
]


class NewVisitor(NamedTuple):
    """A visitor none was seen of: their first click on the share, and the window it opens."""

    org: str
    seen_id: str
    first: Seen
    window_s: float


class SeenVisitorsStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tenants = Tenants(db)

    async def seen(self, seen_ids: list[str]) -> dict[str, Seen]:
        """The first click seen of each (share, visitor) key, where there is one."""
        seen = self.tenants.across(
            SEEN, why="a batch of clicks spans organisations; each key names its share"
        )
        found = seen.find({"_id": {"$in": seen_ids}}, {"first_at": 1, "click_id": 1})
        return {d["_id"]: Seen(float(d["first_at"]), d["click_id"]) async for d in found}

    async def record_new(self, visitors: Sequence[NewVisitor]) -> set[str]:
        """Keep each visitor's first click where none was seen, in one write per organisation;
        the keys kept. A key missing from the answer was kept by another relay meanwhile."""
        by_org: dict[str, list[Document]] = {}
        for v in visitors:
            by_org.setdefault(v.org, []).append({"_id": v.seen_id, **_fields(v.first, v.window_s)})
        kept = await asyncio.gather(
            *(insert_new(self.tenants.of(org, SEEN), documents) for org, documents in by_org.items())
        )
        return set().union(*kept)

    async def record_first(
        self, org: str, seen_id: str, first: Seen, window_s: float, replacing: Seen | None
    ) -> bool:
        """Keep `first` as the visitor's first click inside a new window, unless another relay
        has kept one meanwhile (False): insert where none was seen, else replace `replacing`."""
        if replacing is None:
            return seen_id in await self.record_new([NewVisitor(org, seen_id, first, window_s)])
        result = await self.tenants.of(org, SEEN).update_one(
            {"_id": seen_id, "click_id": replacing.click_id}, {"$set": _fields(first, window_s)}
        )
        return result.modified_count == 1


def _fields(first: Seen, window_s: float) -> Document:
    return {
        "first_at": first.at,
        "click_id": first.click_id,
        "expire_at": datetime.fromtimestamp(first.at + window_s, UTC),
    }
