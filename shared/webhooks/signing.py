"""Outbound webhooks: the one signing recipe every service that calls out uses.

Each delivery is an HTTP POST whose body is signed with the endpoint's secret:

    X-Chorus-Timestamp: <unix seconds>
    X-Chorus-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>
    X-Chorus-Delivery:  <delivery id, the same on every retry: dedupe on it>

The receiver recomputes the HMAC over the raw body it received, compares in constant time, and
refuses timestamps older than five minutes (so a captured request cannot be replayed later).
The recipe in Python is `verify_signature` below; docs/webhooks.md shows it with openssl.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

SIGNATURE_HEADER = "X-Chorus-Signature"
TIMESTAMP_HEADER = "X-Chorus-Timestamp"
DELIVERY_HEADER = "X-Chorus-Delivery"
TOLERANCE_S = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


def verify_signature(secret: str, timestamp: int, body: bytes, signature: str, *, now: int) -> bool:
    """What a receiver does: right signature, and not older (or newer) than the tolerance."""
    if abs(now - timestamp) > TOLERANCE_S:
        return False
    # As bytes: compare_digest raises on str with non-ASCII characters, which a header may hold.
    return hmac.compare_digest(sign(secret, timestamp, body).encode(), signature.encode())


def signed_headers(secret: str, timestamp: int, body: bytes, delivery_id: str) -> dict[str, str]:
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        DELIVERY_HEADER: delivery_id,
    }


def canonical_body(payload: dict[str, Any]) -> bytes:
    """The bytes that are signed and sent (stable key order, compact)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()
