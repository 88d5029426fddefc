"""Where a webhook may go is decided by the addresses its host resolves to, and the request goes
to the address that was checked (so a second lookup, DNS rebinding, cannot redirect it)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.errors import InvalidInput
from shared.settings import ChorusSettings
from shared.webhooks.engine import INDEXES, DeliveryStore, Target, WebhookEngine
from shared.webhooks.policy import State
from tests.helpers import eventually, scratch_database
from tests.integration.metrics.test_webhooks import Receiver, serve

pytestmark = pytest.mark.integration

# Names no DNS knows: only the engine's look-up (given here) resolves them.
ADDRESSES = {"internal.example.test": ["10.0.0.7"], "receiver.example.test": ["127.0.0.1"]}


async def look_up(host: str, port: int) -> list[str]:
    if host not in ADDRESSES:
        raise OSError(f"{host} does not resolve")
    return ADDRESSES[host]


@pytest.fixture
async def deliveries(settings: ChorusSettings) -> AsyncIterator[DeliveryStore]:
    async with scratch_database(settings, "webhook_destinations", INDEXES) as db:
        yield DeliveryStore(db)


def engine(deliveries: DeliveryStore, url: str, *, development: bool) -> WebhookEngine:
    async def target(org: str, name: str) -> Target:
        return Target(url, "s3cret")

    return WebhookEngine(
        deliveries,
        target,
        content_type="application/json",
        retry_base_s=60,
        max_attempts=3,
        timeout_s=5,
        allow_insecure_loopback=development,
        look_up=look_up,
    )


async def test_a_host_that_resolves_to_a_private_address_is_refused_at_registration(
    deliveries: DeliveryStore,
) -> None:
    production = engine(deliveries, "", development=False)
    try:
        with pytest.raises(InvalidInput, match="private or reserved address"):
            await production.checked_url("https://internal.example.test/hook")
        # A name that does not resolve yet is accepted; every attempt checks it again.
        assert await production.checked_url("https://later.example.test/hook")
    finally:
        await production.close()


async def test_a_url_no_request_could_be_sent_to_is_refused_naming_it(deliveries: DeliveryStore) -> None:
    production = engine(deliveries, "", development=False)
    try:
        with pytest.raises(InvalidInput) as refused:
            await production.checked_url("https://later.example.test/hook?\x19")  # a control character
        assert [e["field"] for e in refused.value.errors] == ["url"]
    finally:
        await production.close()


async def test_the_request_goes_to_the_checked_address_under_the_hosts_own_name(
    deliveries: DeliveryStore,
) -> None:
    async with serve(Receiver()) as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        development = engine(deliveries, f"http://receiver.example.test:{port}/hook", development=True)
        try:
            await development.enqueue("d1", "org-a", "hook", "", b'{"n": 1}')
            assert await development.dispatch_due() == 1
            await eventually(lambda: receiver.requests, timeout_s=10)
            headers, body = receiver.requests[0]
            assert (headers["host"], body) == (f"receiver.example.test:{port}", b'{"n": 1}')
        finally:
            await development.close()


async def test_an_attempt_to_a_host_now_resolving_to_a_private_address_is_not_made(
    deliveries: DeliveryStore,
) -> None:
    async with serve(Receiver()) as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        # Registered when its name resolved to a public address; now it resolves to loopback.
        production = engine(deliveries, f"https://receiver.example.test:{port}/hook", development=False)
        try:
            await production.enqueue("d2", "org-a", "hook", "", b"{}")
            assert await production.dispatch_due() == 0
            [delivery] = await deliveries.list("org-a", "hook", 10)
            assert delivery.state is State.PENDING and receiver.attempts == 0
            assert delivery.last_error is not None and "127.0.0.1" in delivery.last_error
        finally:
            await production.close()
