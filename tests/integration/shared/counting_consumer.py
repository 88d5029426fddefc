"""A consumer process for the kill-and-restart test: it counts training events per advocate.

Run as `python -m tests.integration.shared.counting_consumer ORG`. Each event's effect is applied
exactly once: one document per event (insert, duplicate ignored) and a per-advocate counter
guarded by the event id kept in the same document.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

from pymongo.errors import DuplicateKeyError

from shared.events import Event
from shared.events.training import PolicyAcknowledged
from shared.messaging import ConsumerRunner, EventProducer, Subscription
from shared.mongo import applied_once_filter, create_client, mark_applied
from shared.settings import ChorusSettings


async def run(org: str) -> None:
    settings = ChorusSettings(telemetry_enabled=False)
    mongo = create_client(settings)
    db = mongo[settings.database_name("messaging_tests")]
    subscription = Subscription(group=f"counting-{org}")

    @subscription.on(PolicyAcknowledged)
    async def count(event: Event[PolicyAcknowledged]) -> None:
        if event.tenant != org:
            return
        await asyncio.sleep(0.01)  # slow enough that a kill lands mid-stream
        with contextlib.suppress(DuplicateKeyError):
            await db.effects.insert_one({"_id": event.id, "org": org})
        # A DuplicateKeyError here means the filter did not match: the event was already applied.
        with contextlib.suppress(DuplicateKeyError):
            await db.counters.update_one(
                {"_id": f"{org}:{event.data.advocate_id}", **applied_once_filter(event.id)},
                {"$inc": {"n": 1}, "$push": {"applied_events": mark_applied(event.id)["applied_events"]}},
                upsert=True,
            )

    producer = EventProducer(settings)
    await producer.start()
    runner = ConsumerRunner(settings, subscription, producer, max_batch=50)
    await runner.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await runner.stop()
    await producer.stop()
    await mongo.close()


if __name__ == "__main__":
    os.environ.setdefault("CHORUS_TELEMETRY_ENABLED", "false")
    asyncio.run(run(sys.argv[1]))
