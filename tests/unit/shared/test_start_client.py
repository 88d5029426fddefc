"""A Kafka client whose start fails is stopped before the error goes on (shared/messaging/topics.py)."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from shared.messaging.topics import start_client


class Client:
    """Stands for an aiokafka client: records what was called, fails its start if told to."""

    def __init__(self, fails: bool) -> None:
        self.fails = fails
        self.calls: list[str] = []

    async def start(self) -> None:
        self.calls.append("start")
        if self.fails:
            raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 1)]")

    async def stop(self) -> None:
        self.calls.append("stop")


async def test_a_failed_start_is_stopped_and_raised() -> None:
    client: Any = Client(fails=True)
    with pytest.raises(KafkaConnectionError):
        await start_client(client)
    assert client.calls == ["start", "stop"]


async def test_a_start_that_succeeds_leaves_the_client_running() -> None:
    client: Any = Client(fails=False)
    await start_client(client)
    assert client.calls == ["start"]
