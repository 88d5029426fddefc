"""Ids of new entities that a retry must find again."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

Made = TypeVar("Made")

# How long an Idempotency-Key names one request; reused later, it names a new one.
KEY_LIFETIME = timedelta(hours=24)

# What a person's id becomes once they are erased, where the organisation keeps what they did
# (content they published, a goal they set, a redemption they approved, a click a conversion
# credits): the record stays and names nobody.
ERASED = "erased"


async def id_for_request(
    prefix: str,
    key: str | None,
    scope: tuple[str, ...],
    made_at: Callable[[str], Awaitable[datetime | None]],
    now: datetime,
) -> str:
    """The id of what a create makes: `prefix` and 16 hex digits. With the request's
    Idempotency-Key it comes from the key and `scope` (what the key is unique within), so a retry
    of a create that failed half way finds what the first try wrote and finishes it
    (shared/idempotency.py); random otherwise. What has that id made longer ago than the key's
    lifetime (`made_at`: when it was made, None if nothing has it) was made by an earlier use of
    the key, reused since for a new request: the next id of the key's chain of uses is taken."""
    if key is None:
        return f"{prefix}{uuid.uuid4().hex[:16]}"
    chain: tuple[str, ...] = ()
    while True:
        candidate = prefix + hashlib.sha256("|".join((*scope, key, *chain)).encode()).hexdigest()[:16]
        made = await made_at(candidate)
        if made is None or made >= now - KEY_LIFETIME:
            return candidate
        chain = (candidate,)


async def made_before(key: str | None, made_with_key: Callable[[str], Awaitable[Made | None]]) -> Made | None:
    """What a create with this Idempotency-Key made on its first try, whose answer was lost (the
    process stopped, or MongoDB failed over, between the create's write and its stored answer:
    the key was taken over and the retry runs the create again); None without a key or when
    nothing was made. For a create whose id cannot come from the key (it must stay time-ordered
    for its list's cursor, or it is the next number): what it makes keeps the key
    (`request_key`) and `made_with_key` finds it (`shared.mongo.made_with_key_filter`). No race:
    a key is taken over only once its first request can no longer write (shared/idempotency.py)."""
    return None if key is None else await made_with_key(key)
