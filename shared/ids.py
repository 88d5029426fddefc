"""Ids of new entities that a retry must find again."""

from __future__ import annotations

import hashlib
import uuid


def id_from_key(key: str | None, *scope: str) -> str:
    """A new entity's id (16 hex digits). With the request's Idempotency-Key it comes from the key
    and `scope` (what the key is unique within), so a retry of a create that failed half way finds
    what the first try wrote and finishes it (shared/idempotency.py); random otherwise."""
    if key is None:
        return uuid.uuid4().hex[:16]
    return hashlib.sha256("|".join((*scope, key)).encode()).hexdigest()[:16]
