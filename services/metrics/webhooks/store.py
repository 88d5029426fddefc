"""The only MongoDB code of the webhooks module: endpoints and range replays. Deliveries are the
engine's (shared/webhooks/engine.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.documents import Documents
from shared.migrations import rewrite
from shared.mongo import Document, IndexSpec, created_at, erase_person, pending_index
from shared.tenancy import Tenants
from shared.webhooks.engine import DELIVERIES
from shared.webhooks.engine import INDEXES as DELIVERY_INDEXES
from shared.webhooks.sealing import SecretBox

ENDPOINTS = "webhook_endpoints"
REPLAYS = "webhook_replays"

INDEXES = [
    IndexSpec(ENDPOINTS, [("org", ASCENDING), ("active", ASCENDING)]),
    IndexSpec(REPLAYS, [("org", ASCENDING), ("endpoint_id", ASCENDING)]),
    pending_index(REPLAYS, "progress_at", {"state": "running"}, name="replays_running"),
    *DELIVERY_INDEXES,
]


# Deliveries queued before the shared engine, rewritten into its shape once (shared/migrations.py).
MIGRATIONS = [
    rewrite(
        "2026-12-webhook-deliveries-into-the-engine-shape",
        DELIVERIES,
        {"target": {"$exists": False}, "endpoint_id": {"$exists": True}},
        [
            {
                "$set": {
                    "target": "$endpoint_id",
                    "log": [],
                    "meta": {
                        "event_id": "$event_id",
                        "event_type": "$event_type",
                        "event_time": "$event_time",
                        "replay_id": "$replay_id",
                    },
                }
            },
            {"$unset": ["endpoint_id", "event_id", "event_type", "event_time", "replay_id"]},
        ],
    ),
]


@dataclass(frozen=True)
class Endpoint:
    id: str
    org: str
    url: str
    event_types: list[str]
    description: str | None
    secret: str  # kept as is: signing needs it
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class Replay:
    id: str
    org: str
    endpoint_id: str
    since: datetime
    until: datetime
    state: str
    events: int
    requested_by: str
    requested_at: datetime
    # When its task last said it was running: a replay whose task stopped (a restart) is resumed.
    progress_at: datetime | None = None


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _endpoint(doc: Document, box: SecretBox) -> Endpoint:
    """By hand: the secret is stored sealed, and opened with `box` on the way back."""
    return Endpoint(
        id=doc["_id"],
        org=doc["org"],
        url=doc["url"],
        event_types=list(doc["event_types"]),
        description=doc.get("description"),
        secret=box.open(doc["secret"]),
        created_by=doc["created_by"],
        created_at=_utc(doc["created_at"]),
    )


REPLAY_DOCUMENTS = Documents(Replay, stored_as={"since": "from", "until": "to"})


class WebhookStore:
    """Endpoints (their secrets sealed at rest: shared/webhooks/sealing.py) and replays."""

    def __init__(self, db: AsyncDatabase[Document], box: SecretBox) -> None:
        self.tenants = Tenants(db)
        self.box = box

    async def add_endpoint(self, endpoint: Endpoint) -> bool:
        """Insert the endpoint; False when one with its id is there already (a retry of the create
        that made it, its id from the same Idempotency-Key)."""
        # By hand, as `_endpoint` reads it: the secret sealed.
        try:
            await self.tenants.of(endpoint.org, ENDPOINTS).insert_one(
                {
                    "_id": endpoint.id,
                    "url": endpoint.url,
                    "event_types": endpoint.event_types,
                    "description": endpoint.description,
                    "secret": self.box.seal(endpoint.secret),
                    "active": True,
                    "created_by": endpoint.created_by,
                    "created_at": endpoint.created_at,
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def endpoint_made_at(self, org: str, endpoint_id: str) -> datetime | None:
        return await created_at(self.tenants.of(org, ENDPOINTS), endpoint_id)

    async def endpoints(self, org: str) -> list[Endpoint]:
        cursor = self.tenants.of(org, ENDPOINTS).find({"active": True}).sort("created_at", ASCENDING)
        return [_endpoint(d, self.box) async for d in cursor]

    async def endpoint(self, org: str, endpoint_id: str) -> Endpoint | None:
        doc = await self.tenants.of(org, ENDPOINTS).find_one({"_id": endpoint_id, "active": True})
        return None if doc is None else _endpoint(doc, self.box)

    async def deactivate(self, org: str, endpoint_id: str, at: datetime) -> bool:
        result = await self.tenants.of(org, ENDPOINTS).update_one(
            {"_id": endpoint_id, "active": True}, {"$set": {"active": False, "deleted_at": at}}
        )
        return result.modified_count == 1

    async def add_replay(self, replay: Replay) -> Replay:
        """Insert the replay, or answer the one there with its id (a retry of its request, its id
        from the same Idempotency-Key)."""
        return await REPLAY_DOCUMENTS.insert_once(self.tenants.of(replay.org, REPLAYS), replay)

    async def replay_made_at(self, org: str, replay_id: str) -> datetime | None:
        made = await REPLAY_DOCUMENTS.one(self.tenants.of(org, REPLAYS), {"_id": replay_id})
        return None if made is None else made.requested_at

    async def finish_replay(
        self, org: str, replay_id: str, state: str, events: int, error: str | None
    ) -> None:
        await self.tenants.of(org, REPLAYS).update_one(
            {"_id": replay_id}, {"$set": {"state": state, "events": events, "error": error}}
        )

    async def progress_replay(self, org: str, replay_id: str, events: int, at: datetime) -> None:
        await self.tenants.of(org, REPLAYS).update_one(
            {"_id": replay_id, "state": "running"}, {"$set": {"events": events, "progress_at": at}}
        )

    async def stalled_replays(self, quiet_since: datetime, limit: int = 20) -> list[Replay]:
        """Running replays whose task has said nothing since `quiet_since` (or ever)."""
        replays = self.tenants.across(REPLAYS, why="every org's replays whose process stopped are resumed")
        cursor = replays.find({"state": "running", "progress_at": {"$not": {"$gte": quiet_since}}}).limit(
            limit
        )
        return [REPLAY_DOCUMENTS.entity(d) for d in await cursor.to_list()]

    async def take_replay(self, replay: Replay, at: datetime) -> bool:
        """Take a stalled replay over, unless another replica did since it was read."""
        result = await self.tenants.of(replay.org, REPLAYS).update_one(
            {"_id": replay.id, "state": "running", "progress_at": replay.progress_at},
            {"$set": {"progress_at": at}},
        )
        return result.modified_count == 1

    async def replay(self, org: str, endpoint_id: str, replay_id: str) -> Replay | None:
        return await REPLAY_DOCUMENTS.one(
            self.tenants.of(org, REPLAYS), {"_id": replay_id, "endpoint_id": endpoint_id}
        )

    async def erase_staff(self, org: str, person: str) -> None:
        """The endpoints `person` (erased) added and the replays they asked for name nobody (an
        organisation has few of either: the org's part of their indexes narrows these enough)."""
        await erase_person(self.tenants.of(org, ENDPOINTS), "created_by", person)
        await erase_person(self.tenants.of(org, REPLAYS), "requested_by", person)
