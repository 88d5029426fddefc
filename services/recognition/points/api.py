"""Routes of points and the ledger."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.recognition.points import schemas
from services.recognition.points.domain import LedgerEntry
from services.recognition.points.service import PointsService
from services.recognition.web import TAGS, Admin, Cursor, Limit, Member
from shared.app import app_state

router = APIRouter(prefix="/v1", tags=TAGS)


Service = Annotated[PointsService, Depends(app_state("points"))]


def _entry(entry: LedgerEntry) -> schemas.LedgerEntryOut:
    return schemas.LedgerEntryOut.model_validate({**asdict(entry), "entry_id": entry.id})


@router.get("/me/points", summary="My balance and lifetime points")
async def my_points(principal: Member, service: Service) -> schemas.PointsOut:
    account = await service.account(principal.org, principal.sub)
    return schemas.PointsOut.model_validate(account, from_attributes=True)


@router.get("/me/ledger", summary="My points ledger, newest first")
async def my_ledger(
    principal: Member, service: Service, cursor: Cursor = None, limit: Limit = 50
) -> schemas.LedgerPage:
    entries, next_cursor = await service.ledger(principal.org, principal.sub, cursor, limit)
    return schemas.LedgerPage(items=[_entry(e) for e in entries], next_cursor=next_cursor)


@router.get("/ledger", summary="The organisation's ledger (admins)")
async def org_ledger(
    principal: Admin,
    service: Service,
    advocate_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> schemas.LedgerPage:
    entries, next_cursor = await service.ledger(principal.org, advocate_id, cursor, limit)
    return schemas.LedgerPage(items=[_entry(e) for e in entries], next_cursor=next_cursor)


@router.post(
    "/ledger/{entry_id}/reversal", status_code=201, summary="Reverse a ledger entry with a compensating entry"
)
async def reverse_entry(
    entry_id: str, body: schemas.ReversalIn, principal: Admin, service: Service
) -> schemas.LedgerEntryOut:
    """Writes a new negative entry on the same boards; the original is never edited. Reversing the same entry
    twice returns the first reversal. 409 not-reversible for an entry that scoring did not give (a reversal, a
    spending, a refund, an expiry).
    """
    return _entry(await service.reverse(principal.org, entry_id, reason=body.reason, by=principal.sub))


@router.post(
    "/corrections/lead-invalidations",
    status_code=201,
    summary="A lead was invalid: reverse the points it gave",
)
async def invalidate_lead(
    body: schemas.LeadInvalidationIn, principal: Admin, service: Service
) -> schemas.LedgerPage:
    """Finds the lead entries that credited this conversion and reverses each one."""
    entries = await service.lead_invalidated(
        principal.org, body.conversion_id, reason=body.reason, by=principal.sub
    )
    return schemas.LedgerPage(items=[_entry(e) for e in entries], next_cursor=None)
