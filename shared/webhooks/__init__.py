"""The outbound webhook engine: signing (signing.py), the pure rules of delivery (policy.py) and
the delivery queue, log and replay in MongoDB (engine.py). Services keep only what a delivery is
for (metrics' endpoints, recognition's fulfilment hook) and hand the engine bodies to send."""

from shared.webhooks.signing import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    TOLERANCE_S,
    canonical_body,
    sign,
    signed_headers,
    verify_signature,
)

__all__ = [
    "DELIVERY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "TOLERANCE_S",
    "canonical_body",
    "sign",
    "signed_headers",
    "verify_signature",
]
