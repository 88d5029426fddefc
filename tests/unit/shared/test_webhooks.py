"""The pure parts of the webhook engine: the signing recipe, the retry schedule, the states an
attempt leads to and the URL check."""

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from pydantic import BaseModel

from services.metrics.webhooks import schemas as metrics_webhooks
from services.recognition.rewards import schemas as recognition_rewards
from shared import webhooks
from shared.errors import InvalidInput
from shared.settings import ChorusSettings
from shared.webhooks import policy
from shared.webhooks.policy import State
from shared.webhooks.schemas import DeliveryOut
from shared.webhooks.sealing import SecretBox


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


def test_a_signature_header_with_any_characters_is_refused_not_an_error() -> None:
    # A header is whatever the sender put there: a receiver's check must answer False, not raise.
    assert not webhooks.verify_signature("s3cret", 1000, b"{}", "sha256=caf\u00e9", now=1000)


def test_the_signed_headers_are_the_documented_ones() -> None:
    # Receivers verify these byte for byte: names, the timestamp as decimal seconds, sha256=<hex>.
    headers = webhooks.signed_headers("s3cret", 1000, b"{}", "d-1")
    assert headers == {
        "X-Chorus-Timestamp": "1000",
        "X-Chorus-Signature": "sha256=ba0820710ec0b179a7a98a686fdab3bfc9f3e3d02e89561ab1db87bef26581bb",
        "X-Chorus-Delivery": "d-1",
    }


def test_the_canonical_body_is_compact_and_sorted() -> None:
    assert webhooks.canonical_body({"b": 1, "a": [1, 2]}) == b'{"a":[1,2],"b":1}'


def test_backoff_doubles_and_is_capped() -> None:
    assert [policy.backoff(n, 2.0).total_seconds() for n in (1, 2, 3)] == [2, 4, 8]
    assert policy.backoff(40, 2.0).total_seconds() == 3600


def test_jitter_shortens_a_wait_by_at_most_its_share() -> None:
    full = policy.backoff(3, 2.0).total_seconds()
    assert policy.backoff(3, 2.0, rand=0.0).total_seconds() == full
    assert policy.backoff(3, 2.0, rand=0.5).total_seconds() == pytest.approx(full * (1 - policy.JITTER / 2))
    assert policy.backoff(3, 2.0, rand=0.999).total_seconds() > full * (1 - policy.JITTER)


NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_2xx_delivers_whatever_the_attempt() -> None:
    for status in (200, 204, 299):
        outcome = policy.after_attempt(5, status, NOW, max_attempts=5, retry_base_s=1.0)
        assert outcome == policy.Outcome(State.DELIVERED, None)


def test_a_failure_is_retried_later_until_the_last_attempt_then_fails() -> None:
    for status in (None, 301, 404, 500):
        retry = policy.after_attempt(2, status, NOW, max_attempts=3, retry_base_s=1.0)
        assert retry == policy.Outcome(State.PENDING, NOW + timedelta(seconds=2))
        assert policy.after_attempt(3, status, NOW, max_attempts=3, retry_base_s=1.0) == policy.Outcome(
            State.FAILED, None
        )


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",  # plain http
        "ftp://example.com/hook",
        "https://user:pw@example.com/hook",
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.1/hook",
        "https://169.254.169.254/latest/meta-data",  # cloud metadata
        "https://127.1/hook",  # older IPv4 forms a resolver takes for 127.0.0.1
        "https://0x7f000001/hook",
        "https://2130706433/hook",
        "https://0251.0376.0251.0376/hook",  # 169.254.169.254 in octal
        "https://[::1]/hook",
        "https://localhost/hook",
        "/relative",
        "https://example.com:99999/hook",  # no such port
        "https://a[b/hook",  # a bracket that opens no IPv6 address: urlsplit raises on it
        "https://a]b/hook",
        "https://[not-an-address]/hook",
    ],
)
def test_urls_that_are_not_public_https_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput):
        policy.check_url(url, allow_insecure_loopback=False)


@pytest.mark.parametrize("host", ["a" * 64 + ".example.com", "a..example.com"])
def test_a_host_no_lookup_could_send_is_refused_naming_the_url(host: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        policy.check_url(f"https://{host}/hook", allow_insecure_loopback=False)
    assert refused.value.errors == [{"field": "url", "message": "its host is not a valid host name"}]


def test_development_may_call_a_local_receiver_over_http() -> None:
    assert policy.check_url("http://127.0.0.1:9000/hook", allow_insecure_loopback=True)
    assert policy.check_url("https://example.com/hook", allow_insecure_loopback=False)
    with pytest.raises(InvalidInput):
        policy.check_url("http://example.com/hook", allow_insecure_loopback=True)


@pytest.mark.parametrize(
    "addresses",
    [
        ["10.0.0.7"],
        ["93.184.216.34", "192.168.1.20"],  # one private address among public ones is enough
        ["169.254.169.254"],  # cloud metadata
        ["100.64.0.1"],  # shared address space (carrier-grade NAT)
        ["127.0.0.1"],
        ["::1"],
        ["::ffff:10.0.0.1"],  # an IPv4 private address written as IPv6
        ["fd00:ec2::254"],  # unique local (a cloud's IPv6 metadata)
        ["0.0.0.0"],  # noqa: S104 - an address to refuse, not one to bind
        ["224.0.0.1"],
        [],  # the name does not resolve
    ],
)
def test_a_host_resolving_anywhere_but_public_addresses_is_refused(addresses: list[str]) -> None:
    with pytest.raises(InvalidInput) as refused:
        policy.checked_address(addresses, allow_insecure_loopback=False)
    assert refused.value.errors[0]["field"] == "url"


def test_the_first_public_address_is_the_one_to_connect_to() -> None:
    assert policy.checked_address(["93.184.216.34", "2606:2800:220:1::1"], allow_insecure_loopback=False) == (
        "93.184.216.34"
    )
    assert policy.checked_address(["127.0.0.1"], allow_insecure_loopback=True) == "127.0.0.1"
    with pytest.raises(InvalidInput):
        policy.checked_address(["10.0.0.7"], allow_insecure_loopback=True)  # development: loopback only


def test_a_replay_is_a_new_delivery_naming_the_original() -> None:
    assert policy.replay_prefix("d-1") == "d-1:replay-"


OLD_KEY, NEW_KEY = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def test_a_sealed_secret_opens_with_its_key_and_shows_nothing_of_itself() -> None:
    box = SecretBox([OLD_KEY])
    sealed = box.seal("whsec_abc")
    assert sealed.startswith("sealed:") and "whsec_abc" not in sealed
    assert box.open(sealed) == "whsec_abc" and box.is_current(sealed)
    assert box.open("whsec_stored_before_sealing") == "whsec_stored_before_sealing"
    with pytest.raises(ValueError, match="CHORUS_WEBHOOK_SECRET_KEYS"):
        SecretBox([NEW_KEY]).open(sealed)


def test_a_new_key_put_first_seals_from_then_on_and_the_old_still_opens() -> None:
    sealed_before = SecretBox([OLD_KEY]).seal("whsec_abc")
    rotated = SecretBox([NEW_KEY, OLD_KEY])
    assert rotated.open(sealed_before) == "whsec_abc" and not rotated.is_current(sealed_before)
    assert rotated.is_current(rotated.seal("whsec_abc"))
    assert rotated.fingerprint != SecretBox([OLD_KEY]).fingerprint  # a reseal migration per key


def test_production_refuses_the_development_sealing_key() -> None:
    with pytest.raises(ValueError, match="development key"):
        SecretBox.of(ChorusSettings(environment="prod"))
    assert SecretBox.of(ChorusSettings(environment="prod", webhook_secret_keys=[NEW_KEY]))


@pytest.mark.parametrize(
    "service_model", [metrics_webhooks.DeliveryOut, recognition_rewards.FulfilmentDeliveryOut]
)
def test_every_delivery_log_shows_the_engines_delivery_the_same_way(service_model: type[BaseModel]) -> None:
    """Metrics' and recognition's logs are one engine's: a client reads both with one type."""
    engine = DeliveryOut.model_json_schema()
    shown = service_model.model_json_schema()
    assert {name: shown["properties"][name] for name in engine["properties"]} == engine["properties"]
    assert set(engine["required"]) <= set(shown["required"])
