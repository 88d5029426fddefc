"""The only MongoDB code of the webhooks module: endpoints, deliveries and replays."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.mongo import Document, IndexSpec

ENDPOINTS = "webhook_endpoints"
DELIVERIES = "webhook_deliveries"
REPLAYS = "webhook_replays"

INDEXES = [
    IndexSpec(ENDPOINTS, [("org", ASCENDING), ("active", ASCENDING)]),
    IndexSpec(DELIVERIES, [("state", ASCENDING), ("next_attempt_at", ASCENDING)]),
    IndexSpec(DELIVERIES, [("org", ASCENDING), ("endpoint_id", ASCENDING), ("created_at", DESCENDING)]),
    IndexSpec(REPLAYS, [("org", ASCENDING), ("endpoint_id", ASCENDING)]),
]


class WebhookStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db

    async def add_endpoint(self, endpoint: Document) -> None:
        await self._db[ENDPOINTS].insert_one(endpoint)

    async def endpoints(self, org: str) -> list[Document]:
        return [
            d
            async for d in self._db[ENDPOINTS]
            .find({"org": org, "active": True})
            .sort("created_at", ASCENDING)
        ]

    async def endpoint(self, org: str, endpoint_id: str) -> Document | None:
        return await self._db[ENDPOINTS].find_one({"_id": endpoint_id, "org": org, "active": True})

    async def deactivate(self, org: str, endpoint_id: str, at: datetime) -> bool:
        result = await self._db[ENDPOINTS].update_one(
            {"_id": endpoint_id, "org": org, "active": True}, {"$set": {"active": False, "deleted_at": at}}
        )
        if result.modified_count:
            await self._db[DELIVERIES].update_many(
                {"org": org, "endpoint_id": endpoint_id, "state": "pending"}, {"$set": {"state": "cancelled"}}
            )
        return result.modified_count == 1

    async def add_delivery(self, delivery: Document) -> bool:
        """False when this delivery already exists (the event was seen before)."""
        try:
            await self._db[DELIVERIES].insert_one(delivery)
        except DuplicateKeyError:
            return False
        return True

    async def due(self, now: datetime, limit: int) -> list[Document]:
        cursor = self._db[DELIVERIES].find({"state": "pending", "next_attempt_at": {"$lte": now}})
        return [d async for d in cursor.sort("next_attempt_at", ASCENDING).limit(limit)]

    async def claim(self, delivery: Document, lease_until: datetime) -> Document | None:
        """Take a due delivery for sending; None when another dispatcher took it first."""
        return await self._db[DELIVERIES].find_one_and_update(
            {"_id": delivery["_id"], "state": "pending", "attempts": delivery["attempts"]},
            {"$set": {"next_attempt_at": lease_until}, "$inc": {"attempts": 1}},
            return_document=ReturnDocument.AFTER,
        )

    async def record_attempt(self, delivery_id: str, fields: dict[str, Any]) -> None:
        await self._db[DELIVERIES].update_one({"_id": delivery_id}, {"$set": fields})

    async def deliveries(self, org: str, endpoint_id: str, limit: int) -> list[Document]:
        cursor = self._db[DELIVERIES].find({"org": org, "endpoint_id": endpoint_id}, {"body": 0})
        return [d async for d in cursor.sort("created_at", DESCENDING).limit(limit)]

    async def add_replay(self, replay: Document) -> None:
        await self._db[REPLAYS].insert_one(replay)

    async def update_replay(self, replay_id: str, fields: dict[str, Any]) -> None:
        await self._db[REPLAYS].update_one({"_id": replay_id}, {"$set": fields})

    async def replay(self, org: str, endpoint_id: str, replay_id: str) -> Document | None:
        return await self._db[REPLAYS].find_one({"_id": replay_id, "org": org, "endpoint_id": endpoint_id})
