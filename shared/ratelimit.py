"""Rate limits that every replica of a service shares: a fixed window per caller, counted in
MongoDB with one conditional update (so N replicas still allow the limit, not N times it).

A route takes `limits: RateLimited` and calls `await limits.take(principal, "conversions")`
before its work; past the limit of `CHORUS_RATE_LIMITS_PER_MINUTE["conversions"]` the caller (an
API key, or a user) gets a 429 problem+json with Retry-After: the seconds until its window ends.
A name without a configured limit is not limited.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Request
from pymongo.asynchronous.database import AsyncDatabase

from shared.auth import Principal
from shared.clock import Clock, utc_now
from shared.dependencies import on_loop
from shared.errors import PROBLEM_JSON, AppError
from shared.mongo import Document, IndexSpec, conditional_upsert
from shared.tenancy import Tenants

COLLECTION = "rate_limits"
WINDOW_S = 60
# A window's counter outlives it a little, then the TTL index removes it.
INDEXES = [IndexSpec(COLLECTION, [("expires_at", 1)], options={"expireAfterSeconds": 0})]


# For a limited route's `responses=`: the 429 it may answer, in its OpenAPI document.
RATE_LIMITED_RESPONSE: dict[int | str, dict[str, Any]] = {
    429: {
        "description": "Too many requests from this caller this minute; retry after `Retry-After` seconds",
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}},
    }
}


class TooManyRequests(AppError):
    status = 429
    title = "Too many requests"
    type_slug = "too-many-requests"


async def take(
    db: AsyncDatabase[Document], name: str, per_window: int, principal: Principal, now: datetime
) -> None:
    """Count one request of `principal` against `name`'s limit; TooManyRequests past it."""
    window = int(now.timestamp()) // WINDOW_S
    ends = datetime.fromtimestamp((window + 1) * WINDOW_S, tz=now.tzinfo)
    counters = Tenants(db).of(principal.org, COLLECTION)
    counted = await conditional_upsert(
        counters,
        {"_id": f"{principal.org}|{name}|{principal.sub}|{window}", "n": {"$lt": per_window}},
        {"$inc": {"n": 1}, "$setOnInsert": {"expires_at": ends + timedelta(seconds=WINDOW_S)}},
    )
    if not counted:
        wait = max(1, int((ends - now).total_seconds() + 0.999))
        raise TooManyRequests(
            f"more than {per_window} {name} requests a minute; retry in {wait} s",
            headers={"Retry-After": str(wait)},
        )


class RateLimiter:
    """A route dependency: the service's database, limits and clock."""

    def __init__(self, request: Request) -> None:
        self.db = request.app.state.runtime.db
        self.limits: dict[str, int] = request.app.state.settings.rate_limits_per_minute
        self.clock: Clock = utc_now

    async def take(self, principal: Principal, name: str) -> None:
        if (per_minute := self.limits.get(name)) is not None:
            await take(self.db, name, per_minute, principal, self.clock())


RateLimited = Annotated[RateLimiter, Depends(on_loop(RateLimiter))]
