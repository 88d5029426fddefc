"""Tally functions for the tallied-consumer tests: module-level, as a worker process imports them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NamedTuple

from shared.events.training import PolicyAcknowledged
from shared.messaging import Delivered
from shared.messaging.batch import Reveal

KILLS_THE_WORKER = "kills-the-worker"
BREAKS_THE_TALLY = "breaks-the-tally"


class Acknowledgements(NamedTuple):
    worker_pid: int
    acks: list[tuple[str, str, int, int]]  # (org, advocate, partition, offset)


def acknowledgements(topic: str, items: Iterator[Delivered], reveal: Reveal) -> Acknowledgements:
    """Who acknowledged the policy in this poll, and in which process it was tallied."""
    acks = []
    for item in items:
        data = item.event.data
        if not isinstance(data, PolicyAcknowledged):
            continue
        reveal(item.event.tenant, data)
        if data.advocate_id == KILLS_THE_WORKER:
            os._exit(3)  # as a worker killed by the kernel would vanish
        if data.advocate_id == BREAKS_THE_TALLY:
            raise ValueError("this acknowledgement cannot be tallied")
        acks.append((item.event.tenant, data.advocate_id, item.partition, item.offset))
    return Acknowledgements(os.getpid(), acks)


async def _hold_workers() -> None:
    """Start a consumer's tally workers, say their pids, and wait to be killed."""
    import asyncio
    import multiprocessing

    from shared.messaging.offload import TallyWorkers

    workers = TallyWorkers(1)
    await workers.start()
    print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
    await asyncio.sleep(600)


if __name__ == "__main__":
    import asyncio

    asyncio.run(_hold_workers())
