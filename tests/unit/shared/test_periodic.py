"""Periodic jobs (shared.app) stop when their service stops, whatever the job does meanwhile."""

from __future__ import annotations

import asyncio
import contextlib

from shared.app import Periodic, _run_periodic


async def test_a_job_that_swallows_its_cancellation_still_ends_its_loop() -> None:
    started = asyncio.Event()

    async def stubborn_job() -> None:
        # Like a driver's cleanup that catches the cancellation and carries on.
        started.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)

    # every_s is long: a loop that went back to sleep would hold the stop for an hour.
    runner = asyncio.create_task(_run_periodic(Periodic("stubborn", 3600, stubborn_job, first_after_s=0)))
    await started.wait()
    runner.cancel()
    await asyncio.wait_for(runner, timeout=2)
    assert runner.done() and not runner.cancelled()  # it returned on its own


async def test_a_job_is_run_again_every_interval_until_cancelled() -> None:
    ran_three_times = asyncio.Event()
    runs = 0

    async def job() -> None:
        nonlocal runs
        runs += 1
        if runs == 3:
            ran_three_times.set()

    runner = asyncio.create_task(_run_periodic(Periodic("quick", 0.01, job, first_after_s=0)))
    await asyncio.wait_for(ran_three_times.wait(), timeout=5)
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    assert runner.done() and runs >= 3


async def test_a_woken_job_runs_again_before_its_interval() -> None:
    wake = asyncio.Event()
    runs: list[int] = []
    ran = asyncio.Event()

    async def job() -> None:
        runs.append(len(runs))
        ran.set()

    # every_s is an hour: only a wake-up makes a second run.
    runner = asyncio.create_task(_run_periodic(Periodic("woken", 3600, job, wake=wake)))
    try:
        await asyncio.wait_for(ran.wait(), timeout=5)
        ran.clear()
        wake.set()
        await asyncio.wait_for(ran.wait(), timeout=5)
        assert runs == [0, 1]
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
