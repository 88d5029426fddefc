"""How every Kafka client of Chorus connects: the security part of its options, from settings.

PLAINTEXT is the local stack's development listener. SASL_SSL authenticates the service's
SCRAM user over TLS; SSL authenticates its client certificate (mTLS). Either way the broker's
certificate is verified against CHORUS_KAFKA_SSL_CAFILE (or the system's CAs), host name
included, and the broker's authorizer decides what the principal may read and write
(devtools/kafka_access.py).
"""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka.helpers import create_ssl_context

from shared.settings import ChorusSettings


def kafka_security(settings: ChorusSettings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client (producer, consumer, admin)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {"security_protocol": protocol}
    options: dict[str, Any] = {"security_protocol": protocol, "ssl_context": _ssl_context(settings)}
    if protocol == "SASL_SSL":
        assert settings.kafka_sasl_password is not None  # checked by the settings
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": settings.kafka_sasl_password.get_secret_value(),
        }
    return options


def _ssl_context(settings: ChorusSettings) -> ssl.SSLContext:
    # The standard library's client defaults: TLS 1.2 or later, certificate and host name checked.
    context: ssl.SSLContext = create_ssl_context(
        cafile=settings.kafka_ssl_cafile,
        certfile=settings.kafka_ssl_certfile,
        keyfile=settings.kafka_ssl_keyfile,
    )
    return context
