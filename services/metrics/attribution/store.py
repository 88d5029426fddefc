"""The only MongoDB code of attribution: the conversions (one per organisation, customer and type,
each with its event in its outbox) and the clicks that reached each customer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.metrics.attribution.domain import Conversion, Touch
from services.metrics.projections.domain import Click
from shared import idempotency
from shared.documents import Documents
from shared.events import AnyEvent
from shared.messaging.tracing import inject_current
from shared.migrations import drop_index
from shared.mongo import Document, IndexSpec, conditional_upsert
from shared.outbox import outbox_index, pending, queue, with_outbox
from shared.tenancy import Tenants

CONVERSIONS = "conversions"
# A sale's claim keeps how much of it was refunded, in revenue units (projections' REVENUE_SCALE).
REFUNDED = "refunded_units"
CUSTOMERS = "customers"
# Collections whose documents may carry an outbox (shared/outbox.py).
OUTBOX_COLLECTIONS = (CONVERSIONS,)

# The conversion claims' queue before shared/outbox.py, which nothing reads any more.
MIGRATIONS = [drop_index(CONVERSIONS, "state_1_created_at_1")]

INDEXES: list[IndexSpec] = [
    *(outbox_index(c) for c in OUTBOX_COLLECTIONS),
    IndexSpec(CUSTOMERS, [("org", ASCENDING), ("touches.advocate_id", ASCENDING)]),  # erasure
]


TOUCHES = Documents(Touch, id_field=None)
# The click a conversion is credited to, kept in its claim: a hire is credited through its
# candidate's application.
CREDITED = Documents(Click, id_field=None)


@dataclass(frozen=True)
class Recorded:
    """A conversion recorded before: its answer, the click it was credited to, and (a sale) how
    much of it was refunded, in revenue units."""

    response: dict[str, Any]
    click: Click | None
    refunded_units: int = 0


def _recorded(doc: Document) -> Recorded:
    """By hand: a view of part of a claim; its click is read with CREDITED, which gives a field an
    older click lacks its None (Documents does not for a nested entity)."""
    credited = doc.get("credited")
    click = None if credited is None else CREDITED.entity(credited)
    return Recorded(dict(doc["response"]), click, int(doc.get(REFUNDED, 0)))


def _customer_id(org: str, customer_id: str) -> str:
    return f"{org}|{customer_id}"


class AttributionStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tenants = Tenants(db)

    async def claim(self, conversion: Conversion) -> Recorded | None:
        """Insert the conversion with its event queued: None when it is new, else the conversion
        of that customer and type recorded before (its answer and credited click)."""
        conversions = self.tenants.of(conversion.event.tenant, CONVERSIONS)
        # The conversion joins the trace of the click it names (and so of the share), and links
        # the integrator's request that reported it.
        trace = conversion.click.trace if conversion.click is not None else {}
        record = pending(conversion.event, trace=trace, link=inject_current())
        claim = {
            "_id": conversion.claim_id,
            "conversion_id": conversion.event.id,
            "response": conversion.response,
            "credited": None if conversion.click is None else CREDITED.document(conversion.click),
            "created_at": conversion.converted_at,
        }
        try:
            await conversions.insert_one(with_outbox(claim, [record]))
            return None
        except DuplicateKeyError:
            existing = await conversions.find_one({"_id": conversion.claim_id})
            return None if existing is None else _recorded(existing)

    async def recorded(self, org: str, claim_id: str) -> Recorded | None:
        doc = await self.tenants.of(org, CONVERSIONS).find_one({"_id": claim_id})
        return None if doc is None else _recorded(doc)

    async def refund(
        self, org: str, sale_claim: str, seen_units: int, units: int, event: AnyEvent, click: Click | None
    ) -> bool:
        """Count `units` more refunded on the sale and queue the refund's event, in one write, if
        the refunded total is still `seen_units` (False: another refund came in between). The
        event joins the trace of the click the sale was credited to."""
        seen: Any = seen_units if seen_units else {"$in": [0, None]}  # None: never refunded yet
        record = pending(event, trace=click.trace if click else {}, link=inject_current())
        update = queue({"$inc": {REFUNDED: units}}, [record])
        sales = self.tenants.of(org, CONVERSIONS)
        result = await sales.update_one({"_id": sale_claim, REFUNDED: seen}, update)
        return result.modified_count == 1

    async def naming(self, org: str, advocate_id: str) -> list[tuple[str, Recorded]]:
        """The conversions whose answer or credited click names the advocate."""
        found = self.tenants.of(org, CONVERSIONS).find(
            {
                "$or": [
                    {"response.advocate_id": advocate_id},
                    {"response.credits.advocate_id": advocate_id},
                    {"credited.advocate_id": advocate_id},
                ]
            },
            {"response": 1, "credited": 1},
        )
        return [(doc["_id"], _recorded(doc)) async for doc in found]

    async def rewrite(self, org: str, claim_id: str, response: dict[str, Any], click: Click | None) -> None:
        await self.tenants.of(org, CONVERSIONS).update_one(
            {"_id": claim_id},
            {"$set": {"response": response, "credited": None if click is None else CREDITED.document(click)}},
        )

    async def forget_answers_naming(self, org: str, advocate_id: str) -> int:
        """Stored answers of idempotent requests (conversions) that name the advocate."""
        return await idempotency.forget_answers_naming(self.tenants.db, org, advocate_id)

    async def customer_touches(self, org: str, customer_id: str) -> list[Touch]:
        doc = await self.tenants.of(org, CUSTOMERS).find_one({"_id": _customer_id(org, customer_id)})
        return [TOUCHES.entity(t) for t in (doc or {}).get("touches", [])]

    async def add_customer_touch(self, org: str, customer_id: str, touch: Touch) -> None:
        """Remember a click that reached the customer, once however often it is reported."""
        await conditional_upsert(
            self.tenants.of(org, CUSTOMERS),
            {"_id": _customer_id(org, customer_id), "touches.click_id": {"$ne": touch.click_id}},
            {"$push": {"touches": TOUCHES.document(touch)}},
        )

    async def erase_customer_touches(self, org: str, advocate_id: str) -> None:
        await self.tenants.of(org, CUSTOMERS).update_many(
            {"touches.advocate_id": advocate_id}, {"$pull": {"touches": {"advocate_id": advocate_id}}}
        )
