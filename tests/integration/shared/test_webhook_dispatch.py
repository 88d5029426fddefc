"""One receiver cannot hold up the dispatcher that sends every organisation's deliveries: an
attempt has one deadline and its answer's body is never read; an attempt's outcome is written only
while the delivery is still the one it claimed; and a delivery whose attempts were all claimed
without an outcome (its dispatcher died) fails instead of being sent again at every restart."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from shared.clock import utc_now
from shared.settings import ChorusSettings
from shared.webhooks import policy
from shared.webhooks.engine import INDEXES, Attempt, Delivery, DeliveryStore, Target, WebhookEngine
from shared.webhooks.policy import State
from tests.helpers import http_server, scratch_database
from tests.integration.metrics.test_webhooks import Receiver, serve

pytestmark = pytest.mark.integration

CHUNK = b"x" * 65536


@pytest.fixture
async def deliveries(settings: ChorusSettings) -> AsyncIterator[DeliveryStore]:
    async with scratch_database(settings, "webhook_dispatch", INDEXES) as db:
        yield DeliveryStore(db)


def engine(deliveries: DeliveryStore, urls: dict[str, str], *, max_attempts: int = 3) -> WebhookEngine:
    async def target(org: str, name: str) -> Target:
        return Target(urls[name], "s3cret")

    return WebhookEngine(
        deliveries,
        target,
        content_type="application/json",
        retry_base_s=60,
        max_attempts=max_attempts,
        timeout_s=1,
        allow_insecure_loopback=True,
    )


@contextlib.asynccontextmanager
async def answering_200_with(chunks: int, every_s: float, sent: list[int]) -> AsyncIterator[str]:
    """A receiver that answers 200 at once, then a body of `chunks` chunks, one every `every_s`;
    `sent` counts the chunks it wrote."""

    async def body() -> AsyncIterator[bytes]:
        for _ in range(chunks):
            sent[0] += 1
            yield CHUNK
            await asyncio.sleep(every_s)

    async def hook(request: Request) -> StreamingResponse:
        return StreamingResponse(body(), status_code=200)

    async with http_server(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as base_url:
        yield f"{base_url}/hook"


async def test_an_answer_is_judged_by_its_status_without_waiting_for_its_body(
    deliveries: DeliveryStore,
) -> None:
    sent = [0]
    # A byte stream no per-read timeout ends: a chunk every 0.2 s for a minute.
    async with answering_200_with(300, 0.2, sent) as slow, serve(Receiver()) as good:
        dispatcher = engine(deliveries, {"slow": slow, "good": good.url})
        try:
            await dispatcher.enqueue("d1", "org-a", "slow", "", b"{}")
            await dispatcher.enqueue("d2", "org-b", "good", "", b"{}")
            # Generous: the body takes a minute, and is not waited for.
            assert await asyncio.wait_for(dispatcher.dispatch_due(), 20) == 2
            assert len(good.requests) == 1
            [d1] = await deliveries.list("org-a", "slow", 10)
            # The status came before the body, and the status is what counts.
            assert (d1.state, d1.last_status) == (State.DELIVERED, 200)
        finally:
            await dispatcher.close()


@contextlib.asynccontextmanager
async def trickling_its_headers() -> AsyncIterator[str]:
    """A receiver that starts its answer, then sends one header byte every 0.2 s for a minute:
    each read gets something, so no per-read timeout ends it. Raw HTTP, for no server framework
    writes headers a byte at a time."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            for _ in range(300):
                await writer.drain()
                writer.write(b"a")
                await asyncio.sleep(0.2)
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        server.close()


async def test_an_attempt_ends_at_its_deadline_however_its_receiver_trickles(
    deliveries: DeliveryStore,
) -> None:
    async with trickling_its_headers() as slow, serve(Receiver()) as good:
        dispatcher = engine(deliveries, {"slow": slow, "good": good.url})
        try:
            await dispatcher.enqueue("d1", "org-a", "slow", "", b"{}")
            await dispatcher.enqueue("d2", "org-b", "good", "", b"{}")
            # Generous: the slow attempt ends at its 1 s deadline, not after the minute.
            assert await asyncio.wait_for(dispatcher.dispatch_due(), 20) == 1
            assert len(good.requests) == 1
            [d1] = await deliveries.list("org-a", "slow", 10)
            assert (d1.state, d1.last_status) == (State.PENDING, None)
            assert d1.last_error is not None and "timed out" in d1.last_error
        finally:
            await dispatcher.close()


async def test_a_huge_answer_is_not_read(deliveries: DeliveryStore) -> None:
    sent = [0]
    # 256 MiB of body, as fast as loopback takes it (a receiver could send gigabytes): the engine
    # stops at the status line.
    async with answering_200_with(4096, 0, sent) as huge:
        dispatcher = engine(deliveries, {"huge": huge})
        try:
            await dispatcher.enqueue("d1", "org-a", "huge", "", b"{}")
            assert await asyncio.wait_for(dispatcher.dispatch_due(), 20) == 1
            # What the receiver got out before the connection closed: socket buffers, no more.
            assert sent[0] * len(CHUNK) < 64 * 2**20
        finally:
            await dispatcher.close()


def pending(delivery_id: str, org: str = "org-a", target: str = "hook", due_ago_s: float = 0) -> Delivery:
    at = utc_now() - timedelta(seconds=due_ago_s)
    return Delivery(delivery_id, org, target, "", f'"{delivery_id}"', State.PENDING, 0, at, at)


async def test_an_endpoints_deliveries_go_one_at_a_time_in_the_order_they_fell_due(
    deliveries: DeliveryStore,
) -> None:
    in_flight: dict[str, int] = {"a": 0, "b": 0}
    most: dict[str, int] = {"a": 0, "b": 0}
    received: dict[str, list[bytes]] = {"a": [], "b": []}

    async def hook(request: Request) -> Response:
        name = request.path_params["name"]
        in_flight[name] += 1
        most[name] = max(most[name], in_flight[name])
        await asyncio.sleep(0.05)  # room for a second attempt to the same endpoint to overlap
        received[name].append(await request.body())
        in_flight[name] -= 1
        return Response(status_code=204)

    app = Starlette(routes=[Route("/{name}", hook, methods=["POST"])])
    async with http_server(app) as base_url:
        dispatcher = engine(deliveries, {"a": f"{base_url}/a", "b": f"{base_url}/b"})
        try:
            for n in reversed(range(4)):  # x0 fell due first (4 s ago) and is added last
                await deliveries.add(pending(f"a{n}", "org-a", "a", due_ago_s=4 - n))
                await deliveries.add(pending(f"b{n}", "org-b", "b", due_ago_s=4 - n))
            assert await asyncio.wait_for(dispatcher.dispatch_due(), 20) == 8
        finally:
            await dispatcher.close()
    assert received == {
        "a": [b'"a0"', b'"a1"', b'"a2"', b'"a3"'],
        "b": [b'"b0"', b'"b1"', b'"b2"', b'"b3"'],
    }
    assert most == {"a": 1, "b": 1}


async def test_a_dispatcher_whose_lease_ran_out_does_not_overwrite_the_newer_outcome(
    deliveries: DeliveryStore,
) -> None:
    await deliveries.add(pending("d1"))
    at = utc_now()
    stale = await deliveries.claim_due(at, at, 3)  # a lease that has already run out
    newer = await deliveries.claim_due(utc_now(), utc_now() + timedelta(minutes=1), 3)
    assert stale is not None and newer is not None and (stale.attempts, newer.attempts) == (1, 2)

    delivered = policy.Outcome(State.DELIVERED, None)
    assert await deliveries.record(newer, Attempt(utc_now(), 204, None, 5), delivered)
    retry = policy.Outcome(State.PENDING, utc_now() + timedelta(minutes=1))
    assert not await deliveries.record(stale, Attempt(utc_now(), 503, None, 9), retry)

    [d1] = await deliveries.list("org-a", "hook", 10)
    assert (d1.state, d1.last_status, [a.status for a in d1.log]) == (State.DELIVERED, 204, [204])


async def test_a_delivery_claimed_to_its_last_attempt_without_an_outcome_fails(
    deliveries: DeliveryStore,
) -> None:
    async with serve(Receiver()) as receiver:
        dispatcher = engine(deliveries, {"hook": receiver.url}, max_attempts=2)
        try:
            await dispatcher.enqueue("d1", "org-a", "hook", "", b"{}")
            for _ in range(2):  # each claiming dispatcher died (OOM) before recording anything
                assert await deliveries.claim_due(utc_now(), utc_now(), 2) is not None

            assert await dispatcher.dispatch_due() == 0
            assert receiver.attempts == 0
            [d1] = await deliveries.list("org-a", "hook", 10)
            assert (d1.state, d1.attempts, d1.next_attempt_at) == (State.FAILED, 2, None)
            assert d1.last_error is not None and "no outcome" in d1.last_error
        finally:
            await dispatcher.close()
