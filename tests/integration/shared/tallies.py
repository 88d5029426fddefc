"""Tally functions for the tallied-consumer tests: module-level, as a worker process imports them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NamedTuple

from shared.events.training import PolicyAcknowledged
from shared.messaging import Delivered

KILLS_THE_WORKER = "kills-the-worker"
BREAKS_THE_TALLY = "breaks-the-tally"


class Acknowledgements(NamedTuple):
    worker_pid: int
    acks: list[tuple[str, str, int, int]]  # (org, advocate, partition, offset)


def acknowledgements(topic: str, items: Iterator[Delivered]) -> Acknowledgements:
    """Who acknowledged the policy in this poll, and in which process it was tallied."""
    acks = []
    for item in items:
        data = item.event.data
        if not isinstance(data, PolicyAcknowledged):
            continue
        if data.advocate_id == KILLS_THE_WORKER:
            os._exit(3)  # as a worker killed by the kernel would vanish
        if data.advocate_id == BREAKS_THE_TALLY:
            raise ValueError("this acknowledgement cannot be tallied")
        acks.append((item.event.tenant, data.advocate_id, item.partition, item.offset))
    return Acknowledgements(os.getpid(), acks)
