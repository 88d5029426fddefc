"""Routes of the conversions API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.metrics.attribution.schemas import ConversionIn, ConversionOut
from services.metrics.web import Integration, Modules
from shared.idempotency import Idempotent
from shared.ratelimit import RATE_LIMITED_RESPONSE, RateLimited

router = APIRouter(prefix="/v1", tags=["conversions"])


@router.post(
    "/conversions",
    response_model=ConversionOut,
    responses=RATE_LIMITED_RESPONSE,
    summary="Record a lead or a sale",
)
async def record_conversion(
    body: ConversionIn,
    principal: Integration,
    modules: Modules,
    once: Idempotent,
    limits: RateLimited,
) -> dict[str, Any]:
    """For websites and CRMs, with an organisation API key (`X-API-Key`) or an admin token. Attributed to the
    click, share, advocate and content when the click id is known and within the attribution window;
    otherwise accepted as unattributed (`attributed: false`, `reason`). A lead counts once per customer; a
    sale names its `order_id` and counts once per customer and order, so every order of a returning
    customer counts (`duplicate: true` for one already recorded). A click the redirect made a moment ago
    may not have reached metrics yet: the request waits for it a few seconds
    (CHORUS_CONVERSION_CLICK_WAIT_S). Send an `Idempotency-Key`.
    """
    principal.check_scope("conversions:write")
    await limits.take(principal, "conversions")
    return await once(
        principal.org,
        "conversions",
        body,
        lambda: modules.attribution.record_conversion(principal.org, body),
    )
