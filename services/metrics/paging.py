"""Pages of an organisation's documents in `_id` order, and ids that make that creation order."""

from __future__ import annotations

import secrets
import time

from pymongo import ASCENDING

from shared.documents import Documents, Entity
from shared.mongo import Document
from shared.pagination import decode_cursor, encode_cursor
from shared.tenancy import TenantCollection


def new_id() -> str:
    """Time-ordered ids, so cursor pages come back in creation order."""
    return f"{int(time.time() * 1000):013x}{secrets.token_hex(5)}"


async def page_by_id(
    collection: TenantCollection, documents: Documents[Entity], cursor: str | None, limit: int
) -> tuple[list[Entity], str | None]:
    """Up to `limit` entities after the cursor, and the cursor of the next page (None: the last)."""
    query: Document = {}
    after = decode_cursor(cursor)
    if after is not None:
        query["_id"] = {"$gt": after}
    docs = [d async for d in collection.find(query).sort("_id", ASCENDING).limit(limit + 1)]
    next_cursor = encode_cursor(docs[limit - 1]["_id"]) if len(docs) > limit else None
    return [documents.entity(d) for d in docs[:limit]], next_cursor
