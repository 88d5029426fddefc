"""The click relay as a process of its own.

With CHORUS_CLICK_RELAY_PROCESS=true the service starts `python -m
services.sharing.redirect.relay_process` beside itself: the drain (serialising, Kafka, spans) then
runs on another CPU and a spike of redirects never starves it, nor it the redirects. It reads
the same spool file (services/sharing/redirect/spool.py). It has no probe of its own: when its
drain ended for good it exits with status 1, and the service's /healthz fails on that
(services/sharing/main.py), so that the pod, and with it this process, is restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

from services.sharing.redirect.spool import ClickRelay, ClickSpool
from services.sharing.redirect.store import SeenVisitorsStore
from services.sharing.settings import SERVICE, SharingSettings
from shared.mongo import create_client
from shared.telemetry import flush_telemetry, setup_telemetry

RELAY_SETTINGS_ENV = "CHORUS_SHARING_RELAY_SETTINGS"


async def run_relay_process(settings_json: str) -> int:
    """Drain the spool until stopped (status 0), or until the drain ended for good (status 1)."""
    settings = SharingSettings.model_validate_json(settings_json)
    settings.service_name = "sharing-relay"
    setup_telemetry(settings)
    mongo = create_client(settings, service=True)
    relay = ClickRelay(
        settings,
        ClickSpool(settings.click_spool_path),
        seen=SeenVisitorsStore(mongo[settings.database_name(SERVICE)]),
        flush_interval_s=settings.click_flush_interval_s,
        batch=settings.click_drain_batch,
        idle_s=settings.click_flush_interval_s * 5,
    )
    await relay.start(flush=False, drain=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    parent = os.getppid()
    status = 0
    # Stop when told to, when the service that started us is gone (never outlive it), or when the
    # drain ended for good.
    while not stopping.is_set() and os.getppid() == parent:
        if any(task.done() for task in relay.tasks):
            status = 1  # logged as it ended (shared/liveness.py)
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=1.0)
    await relay.stop()
    await mongo.close()
    flush_telemetry()
    return status


if __name__ == "__main__":
    sys.exit(asyncio.run(run_relay_process(os.environ[RELAY_SETTINGS_ENV])))
