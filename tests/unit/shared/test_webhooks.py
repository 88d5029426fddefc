"""The webhook signing recipe and retry schedule every outbound webhook uses."""

from shared import webhooks


def test_a_signature_verifies_only_for_the_same_secret_timestamp_and_body() -> None:
    signature = webhooks.sign("s3cret", 1000, b'{"x":1}')
    assert signature.startswith("sha256=")
    assert webhooks.verify_signature("s3cret", 1000, b'{"x":1}', signature, now=1000)
    assert not webhooks.verify_signature("s3cret", 1001, b'{"x":1}', signature, now=1000)
    assert not webhooks.verify_signature("other", 1000, b'{"x":1}', signature, now=1000)
    assert not webhooks.verify_signature("s3cret", 1000, b'{"x":2}', signature, now=1000)


def test_an_old_signature_is_refused_even_when_it_matches() -> None:
    signature = webhooks.sign("s3cret", 1000, b"{}")
    assert webhooks.verify_signature("s3cret", 1000, b"{}", signature, now=1000 + webhooks.TOLERANCE_S)
    assert not webhooks.verify_signature("s3cret", 1000, b"{}", signature, now=1001 + webhooks.TOLERANCE_S)


def test_backoff_doubles_and_is_capped() -> None:
    assert [webhooks.backoff(n, 2.0).total_seconds() for n in (1, 2, 3)] == [2, 4, 8]
    assert webhooks.backoff(40, 2.0).total_seconds() == 3600
