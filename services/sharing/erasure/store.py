"""Erasure's collection.

- erasures   one per erasure request, holding its chorus.advocate.erased until it is sent (the
             advocate's own document is deleted, and its unsent events with it)
"""

from __future__ import annotations

from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from shared.mongo import Document, IndexSpec
from shared.outbox import outbox_index, with_outbox
from shared.tenancy import Tenants

ERASURES = "erasures"

OUTBOX_COLLECTIONS = (ERASURES,)

INDEXES: list[IndexSpec] = [outbox_index(c) for c in OUTBOX_COLLECTIONS]


class ErasureStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tenants = Tenants(db)

    async def record(self, org: str, erasure_id: str, now: datetime, outbox: list[Document]) -> None:
        """The erasure request and its event. Once the event is sent, the document says only that
        an erasure was asked for in the organisation, and when."""
        await self.tenants.of(org, ERASURES).insert_one(
            with_outbox({"_id": erasure_id, "requested_at": now}, outbox)
        )
