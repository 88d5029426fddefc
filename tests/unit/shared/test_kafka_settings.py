"""Kafka security settings: incomplete combinations are refused at start, naming the variables."""

from __future__ import annotations

import ssl

import pytest
from pydantic import ValidationError

from shared.messaging import kafka_security
from shared.settings import ChorusSettings


def test_the_local_default_is_the_plain_listener() -> None:
    assert kafka_security(ChorusSettings()) == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_sends_the_scram_user_over_tls_that_checks_the_broker() -> None:
    options = kafka_security(
        ChorusSettings(
            kafka_security_protocol="SASL_SSL", kafka_sasl_username="content", kafka_sasl_password="s3cret"
        )
    )

    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("content", "s3cret")
    context = options["ssl_context"]
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED


def test_the_password_never_shows_in_the_settings() -> None:
    settings = ChorusSettings(
        kafka_security_protocol="SASL_SSL", kafka_sasl_username="content", kafka_sasl_password="s3cret"
    )

    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("given", "named"),
    [
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "content"},
            "CHORUS_KAFKA_SASL_PASSWORD",
        ),
        ({"kafka_security_protocol": "SSL"}, "CHORUS_KAFKA_SSL_CERTFILE"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_certfile": "/c.crt"}, "CHORUS_KAFKA_SSL_KEYFILE"),
        ({"kafka_ssl_cafile": "/ca.crt"}, "PLAINTEXT"),
        ({"kafka_security_protocol": "SASL_PLAINTEXT"}, "kafka_security_protocol"),
    ],
)
def test_an_incomplete_kafka_security_setting_is_refused(given: dict[str, str], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        ChorusSettings(**given)  # type: ignore[arg-type]
