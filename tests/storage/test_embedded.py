"""Unit tests of storeengine/embedded.py's worker: deadlines, and cancellation that is never lost."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from pymongo.errors import ExecutionTimeout

from storeengine.storage.embedded import Runner


async def test_a_read_past_its_deadline_raises_execution_timeout() -> None:
    runner = Runner()
    release = threading.Event()
    try:
        with pytest.raises(ExecutionTimeout):
            await runner.run(lambda: release.wait(5), timeout_ms=50)
    finally:
        release.set()
        runner.close()


async def test_a_read_within_its_deadline_returns_its_result() -> None:
    runner = Runner()
    try:
        assert await runner.run(lambda: 42, timeout_ms=1000) == 42
    finally:
        runner.close()


@pytest.mark.parametrize("timeout_ms", [None, 10_000])
async def test_cancelling_a_caller_whose_job_just_finished_still_cancels_it(timeout_ms: int | None) -> None:
    """The job completes and the caller is cancelled in the same loop turn (as at shutdown, when
    the maintenance task is cancelled mid-read). asyncio.wait_for in Python 3.11 returned the
    result and dropped the cancellation, so the task ran on and the server never finished
    shutting down."""
    runner = Runner()
    release, finished = threading.Event(), threading.Event()

    def job() -> int:
        release.wait(5)
        finished.set()
        return 1

    try:
        task = asyncio.create_task(runner.run(job, timeout_ms=timeout_ms))
        await asyncio.sleep(0.05)  # the task now waits on the worker
        release.set()
        assert finished.wait(5)
        time.sleep(0.05)  # noqa: ASYNC251 (on purpose: the job's result is queued to the blocked loop)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        release.set()
        runner.close()
