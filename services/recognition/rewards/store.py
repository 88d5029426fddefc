"""The rewards catalogue, redemptions (each carrying its chorus.reward.redeemed in its outbox)
and each organisation's fulfilment webhook. Stock, budget and status changes are each one
conditional single-document update; a redemption's reservation is remembered on the reward, so
that a retry of it takes nothing twice: in `reserving` while the redemption is placing, however
many others reserve meanwhile, then among the last ones placed (`applied_events`)."""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from services.recognition.rewards.domain import FULFILMENT, MOVED_BY, Move, Redemption, Reward
from shared.documents import Documents
from shared.ids import KEY_LIFETIME
from shared.migrations import NO_ORG, rewrite
from shared.mongo import (
    Document,
    IndexSpec,
    applied_once_filter,
    created_at,
    erase_person,
    mark_applied,
    newest_first,
    pending_index,
)
from shared.outbox import outbox_index, queue
from shared.tenancy import Tenants
from shared.webhooks.engine import DELIVERIES, Target
from shared.webhooks.engine import INDEXES as DELIVERY_INDEXES
from shared.webhooks.sealing import SecretBox

REWARDS = "rewards"
# On a reward: the redemptions placing that reserved a unit of it.
RESERVING = "reserving"
REDEMPTIONS = "redemptions"
WEBHOOKS = "webhooks"

INDEXES: list[IndexSpec] = [
    IndexSpec(REWARDS, [("org", ASCENDING), ("created_at", DESCENDING)]),
    IndexSpec(REDEMPTIONS, [("org", ASCENDING), ("created_at", DESCENDING)]),
    IndexSpec(REDEMPTIONS, [("org", ASCENDING), ("advocate_id", ASCENDING), ("created_at", DESCENDING)]),
    pending_index(REDEMPTIONS, "updated_at", {"needs_relay": True}, name="redemptions_to_relay"),
    # Who moved redemptions (approved, rejected, fulfilled them), for their erasure.
    *(IndexSpec(REDEMPTIONS, [("org", ASCENDING), (by, ASCENDING)]) for by in MOVED_BY.values()),
    # Redemptions carry their chorus.reward.redeemed in an outbox (shared/outbox.py).
    outbox_index(REDEMPTIONS),
    # A refused redemption is kept, dropped, while a stale try of it may still run (`drop_placing`).
    IndexSpec(REDEMPTIONS, [("forget_at", ASCENDING)], options={"expireAfterSeconds": 0}),
    *DELIVERY_INDEXES,
]

MIGRATIONS = [
    # Fulfilment deliveries queued before the shared engine, rewritten into its shape (their body
    # was `payload_json`; their URL is resolved again at send time).
    rewrite(
        "2026-12-fulfilment-deliveries-into-the-engine-shape",
        DELIVERIES,
        {"target": {"$exists": False}, "payload_json": {"$exists": True}},
        [
            {"$set": {"target": FULFILMENT, "body": "$payload_json", "log": [], "meta": {}}},
            {"$unset": ["payload_json"]},
        ],
    ),
    # The fulfilment webhook is keyed by the org and, before every query named it, did not carry it.
    rewrite("2026-12-fulfilment-webhooks-carry-their-org", WEBHOOKS, NO_ORG, [{"$set": {"org": "$_id"}}]),
]

REWARD_DOCUMENTS = Documents(Reward)
# What reads and moves of redemptions match: not one still taking its stock and points.
SHOWN: Document = {"placing": {"$ne": True}}
# A redemption still taking its stock and points: neither placed nor dropped (refused) yet.
STILL_PLACING: Document = {"placing": True, "dropped": {"$ne": True}}
# Redemptions made before the reward's name and price were copied onto them.
REDEMPTION_DOCUMENTS = Documents(Redemption, older={"reward_name": "reward", "price_cents": 0})


class RewardStore:
    def __init__(self, db: AsyncDatabase[Document], box: SecretBox) -> None:
        self.tenants = Tenants(db)
        self.box = box  # seals the fulfilment webhook's secret at rest (shared/webhooks/sealing.py)

    @property
    def db(self) -> AsyncDatabase[Document]:
        """For the webhook engine, which keeps its own collection here."""
        return self.tenants.db

    # --- the catalogue ---------------------------------------------------------------------------

    async def insert_reward(self, org: str, reward: Reward) -> Reward:
        """Insert the reward, or answer the one there with its id (a retry of its create)."""
        return await REWARD_DOCUMENTS.insert_once(self.tenants.of(org, REWARDS), reward)

    async def reward_made_at(self, org: str, reward_id: str) -> datetime | None:
        return await created_at(self.tenants.of(org, REWARDS), reward_id)

    async def reward(self, org: str, reward_id: str) -> Reward | None:
        return await REWARD_DOCUMENTS.one(self.tenants.of(org, REWARDS), {"_id": reward_id})

    async def rewards(self, org: str, *, after: tuple[datetime, str] | None, limit: int) -> list[Reward]:
        cursor = newest_first(self.tenants.of(org, REWARDS), {}, after, limit)
        return [REWARD_DOCUMENTS.entity(d) for d in await cursor.to_list()]

    async def reserve(self, org: str, reward: Reward, redemption_id: str) -> bool:
        """Take one unit of stock and the reward's price from its budget for a redemption, in one
        conditional update; True when it is taken, by this call or by an earlier try of the same
        redemption (the update remembers its id in `reserving`).

        A null stock or budget means unlimited, and which of them a reward has is fixed when it is
        created, so the reward as read says which conditions and decrements apply.
        """
        query: Document = {
            "_id": reward.id,
            "active": True,
            RESERVING: {"$ne": redemption_id},
            **applied_once_filter(redemption_id),
        }
        inc: Document = {"stock_taken": 1, "spent_cents": reward.price_cents}
        if reward.stock is not None:
            query["stock"] = {"$gte": 1}
            inc["stock"] = -1
        if reward.budget_left_cents is not None:
            query["budget_left_cents"] = {"$gte": reward.price_cents}
            inc["budget_left_cents"] = -reward.price_cents
        rewards = self.tenants.of(org, REWARDS)
        result = await rewards.update_one(query, {"$inc": inc, "$push": {RESERVING: redemption_id}})
        if result.modified_count:
            return True
        held = {"_id": reward.id, **_holding(redemption_id)}
        return await rewards.find_one(held, {"_id": 1}) is not None

    async def settle_reservation(self, org: str, reward_id: str, redemption_id: str) -> None:
        """The redemption is placed: its reservation joins the last ones placed, which a stale try
        of it still finds (`reserve`), and leaves `reserving`, which holds only those placing."""
        await self.tenants.of(org, REWARDS).update_one(
            {"_id": reward_id, RESERVING: redemption_id},
            {"$pull": {RESERVING: redemption_id}, "$push": mark_applied(redemption_id)},
        )

    async def return_stock(self, org: str, reward: Reward, redemption: Redemption) -> None:
        """Give back what a rejected redemption took, once whatever the retries: the reward
        remembers the return (`mark_applied`), and a retry comes long before the window forgets it."""
        returned = f"returned:{redemption.id}"
        await self.tenants.of(org, REWARDS).update_one(
            {"_id": reward.id, **applied_once_filter(returned)},
            {"$inc": _released(reward, redemption.price_cents), "$push": mark_applied(returned)},
        )

    async def release_reservation(self, org: str, reward: Reward, redemption: Redemption) -> None:
        """Give back what `reserve` took for a redemption that was refused, once whatever the
        retries: the update forgets the redemption's id as it gives back."""
        await self.tenants.of(org, REWARDS).update_one(
            {"_id": reward.id, **_holding(redemption.id)},
            {
                "$inc": _released(reward, redemption.price_cents),
                "$pull": {RESERVING: redemption.id, "applied_events": redemption.id},
            },
        )

    # --- redemptions -----------------------------------------------------------------------------

    async def begin_redemption(self, redemption: Redemption) -> Redemption:
        """Write a placing redemption, or answer the one there with its id (a retry)."""
        return await REDEMPTION_DOCUMENTS.insert_once(
            self.tenants.of(redemption.org, REDEMPTIONS), redemption
        )

    async def redemption_made_at(self, org: str, redemption_id: str) -> datetime | None:
        """When the redemption with this id was made (placing or not); None if there is none. A
        dropped one reads as made before any key's lifetime: its use of the key is over, so a
        retry of its request takes the key's next id (`shared.ids.id_for_request`) and tries again."""
        doc = await self.tenants.of(org, REDEMPTIONS).find_one(
            {"_id": redemption_id}, {"created_at": 1, "dropped": 1}
        )
        if doc is None:
            return None
        return datetime.min.replace(tzinfo=UTC) if doc.get("dropped") else doc["created_at"]

    async def place(self, redemption: Redemption, outbox: list[Document]) -> bool:
        """Show a placing redemption as `redemption` (placed), queueing its event in the same
        write; False when it was placed or dropped already."""
        changes = {"placing": False, "needs_relay": False, "updated_at": redemption.updated_at}
        result = await self.tenants.of(redemption.org, REDEMPTIONS).update_one(
            {"_id": redemption.id, **STILL_PLACING}, queue({"$set": changes}, outbox)
        )
        return bool(result.modified_count)

    async def drop_placing(self, org: str, redemption_id: str, at: datetime) -> bool:
        """Drop a redemption refused while placing; False when another try placed or dropped it
        first. It is kept, shown to no one, for as long as a try of it may run (a relay's stale
        read, a retry of its request): were it deleted, such a try would find its stock and points
        no longer remembered as taken and take them again for a redemption that is not there."""
        result = await self.tenants.of(org, REDEMPTIONS).update_one(
            {"_id": redemption_id, **STILL_PLACING},
            {"$set": {"dropped": True, "needs_relay": False, "forget_at": at + KEY_LIFETIME}},
        )
        return bool(result.modified_count)

    async def redemption(self, org: str, redemption_id: str) -> Redemption | None:
        """A redemption as shown: not one still placing."""
        return await REDEMPTION_DOCUMENTS.one(
            self.tenants.of(org, REDEMPTIONS), {"_id": redemption_id, **SHOWN}
        )

    async def move(
        self, org: str, redemption_id: str, move: Move, by: str, at: datetime, outbox: list[Document]
    ) -> Redemption | None:
        """Compare-and-set the status, queueing its event in the same write. What the move
        leaves to do in other documents marks the redemption `needs_relay` until it is done."""
        to = str(move.target)
        changes: Document = {"status": to, "updated_at": at, f"{to}_at": at, MOVED_BY[move.target]: by}
        if move.refund or move.webhook:
            changes["needs_relay"] = True
        if move.note:
            changes["note"] = move.note
        if move.refund:
            changes["refund_pending"] = True
        if move.webhook:
            changes["webhook_pending"] = True
        doc = await self.tenants.of(org, REDEMPTIONS).find_one_and_update(
            {"_id": redemption_id, "status": {"$in": move.sources}, **SHOWN},
            queue({"$set": changes}, outbox),
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else REDEMPTION_DOCUMENTS.entity(doc)

    async def clear_webhook_pending(self, org: str, redemption_id: str) -> None:
        await self.tenants.of(org, REDEMPTIONS).update_one(
            {"_id": redemption_id}, {"$set": {"webhook_pending": False}}
        )

    async def clear_refund_pending(self, org: str, redemption_id: str) -> None:
        await self.tenants.of(org, REDEMPTIONS).update_one(
            {"_id": redemption_id}, {"$set": {"refund_pending": False}}
        )

    async def finish_relay(self, org: str, redemption_id: str) -> None:
        await self.tenants.of(org, REDEMPTIONS).update_one(
            {"_id": redemption_id, "refund_pending": {"$ne": True}, "webhook_pending": {"$ne": True}},
            {"$set": {"needs_relay": False}},
        )

    async def redemptions(
        self,
        org: str,
        advocate_id: str | None,
        status: str | None,
        *,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Redemption]:
        query: Document = dict(SHOWN)
        if advocate_id is not None:
            query["advocate_id"] = advocate_id
        if status is not None:
            query["status"] = status
        cursor = newest_first(self.tenants.of(org, REDEMPTIONS), query, after, limit)
        return [REDEMPTION_DOCUMENTS.entity(d) for d in await cursor.to_list()]

    async def stale_redemptions(self, older_than: datetime, limit: int = 200) -> list[Redemption]:
        redemptions = self.tenants.across(REDEMPTIONS, why="the relay finishes every org's redemption moves")
        cursor = redemptions.find({"needs_relay": True, "updated_at": {"$lt": older_than}}).limit(limit)
        return [REDEMPTION_DOCUMENTS.entity(d) for d in await cursor.to_list()]

    async def erase(self, org: str, advocate_id: str, token: str) -> None:
        redemptions = self.tenants.of(org, REDEMPTIONS)
        await redemptions.update_many({"advocate_id": advocate_id}, {"$set": {"advocate_id": token}})
        # The moves they made as staff (the same `sub`) stay, naming nobody.
        for by in MOVED_BY.values():
            await erase_person(redemptions, by, advocate_id)

    # --- the fulfilment webhook ------------------------------------------------------------------

    async def set_webhook(self, org: str, url: str, secret: str, at: datetime) -> None:
        await self.tenants.of(org, WEBHOOKS).update_one(
            {"_id": org},
            {"$set": {"url": url, "secret": self.box.seal(secret), "updated_at": at}},
            upsert=True,
        )

    async def webhook(self, org: str) -> Target | None:
        doc = await self.tenants.of(org, WEBHOOKS).find_one({"_id": org})
        return None if doc is None else Target(url=doc["url"], secret=self.box.open(doc["secret"]))


def _holding(redemption_id: str) -> Document:
    """The filter of a reward holding a reservation for the redemption (one made before
    `reserving` was kept is among `applied_events`)."""
    return {"$or": [{RESERVING: redemption_id}, {"applied_events": redemption_id}]}


def _released(reward: Reward, price_cents: int) -> Document:
    """The increments that give back one unit of stock and its price (`$inc`)."""
    inc: Document = {"stock_taken": -1, "spent_cents": -price_cents}
    if reward.stock is not None:
        inc["stock"] = 1
    if reward.budget_left_cents is not None:
        inc["budget_left_cents"] = price_cents
    return inc
