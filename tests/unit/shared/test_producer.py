"""The producer's send loop, without a broker: a client whose sends never wait."""

from __future__ import annotations

import asyncio
from typing import Any

from shared.events import Event
from shared.events.content import ContentArchived
from shared.messaging import EventProducer
from shared.messaging.producer import SENDS_PER_TURN
from shared.settings import ChorusSettings


class ClientThatNeverWaits:
    """aiokafka's send waits when a partition's batch is full; this one never does, which is the
    worst case for a server's event loop (records spread over many partitions)."""

    def __init__(self) -> None:
        self.sent: list[bytes | None] = []
        self.first_sent = asyncio.Event()

    async def send(self, topic: str, value: bytes, *, key: bytes | None, headers: Any) -> asyncio.Future[Any]:
        self.sent.append(key)
        self.first_sent.set()
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_a_long_publish_lets_the_loop_turn_between_its_sends_in_order() -> None:
    producer = EventProducer(ChorusSettings(telemetry_enabled=False))
    client = ClientThatNeverWaits()
    producer._producer = client  # type: ignore[assignment]
    events = [
        Event.create(ContentArchived(content_id=f"c{n}", reason="expired"), tenant="org", source="/t")
        for n in range(4 * SENDS_PER_TURN)
    ]
    sent_when_other_work_ran: list[int] = []

    async def other_work() -> None:  # a server's request, waiting for its turn
        await client.first_sent.wait()
        sent_when_other_work_ran.append(len(client.sent))

    other = asyncio.create_task(other_work())
    await producer.publish_many(events)
    await other
    assert sent_when_other_work_ran == [SENDS_PER_TURN]
    assert client.sent == [e.data.record_key().encode() for e in events]
