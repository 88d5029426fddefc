"""Tasks that ended for good: what the liveness probe (/healthz, shared/app.py `ended_for_good`)
reads, apart from the consumers' own `ended_by`.

A task meant to run as long as its process (a periodic job, a loop of the click relay) waits out
every outage of MongoDB or Kafka. One that ended without being cancelled met an error it does not
retry (a stray CancelledError from a driver's own task, say), and only a restart of the process
brings it back: so /healthz fails, and the kubelet restarts the pod. No FastAPI here: the click
relay's own process (services/sharing/redirect/relay_process.py) uses it too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)


async def for_good(what: str, work: Callable[[], Awaitable[None]]) -> None:
    """Run `work`, the whole of the current task's work, and log it if it ends in an error that
    did not come from the task being cancelled (the process stopping it). A callable, not a
    coroutine: a task cancelled before it ran would leave that coroutine never awaited."""
    try:
        await work()
    except BaseException:
        task = asyncio.current_task()
        if task is None or not task.cancelling():
            log.exception("%s ended for good; /healthz fails until the process restarts", what)
        raise


def tasks_ended(kind: str, tasks: Iterable[asyncio.Task[Any]]) -> dict[str, str]:
    """Those of `tasks` that ended, each named "<kind> <task name>", with what ended it."""
    return {f"{kind} {task.get_name()}": ended_by(task) for task in tasks if task.done()}


def ended_by(task: asyncio.Task[Any]) -> str:
    """What ended a done task: the name of its error, or "returned"."""
    if task.cancelled():
        return "CancelledError"
    error = task.exception()
    return "returned" if error is None else type(error).__name__
