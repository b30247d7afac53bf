"""The bot's outcome loop stops at shutdown even when a library loses a cancellation.

Python 3.11's asyncio.wait_for, which redis-py uses for each write under a socket timeout, returns
the inner result instead of raising when the cancellation arrives just as the inner call finishes.
After SIGTERM the bot then waited for its outcome loop forever (`python -m bot` hung after
"Application.stop() complete").
"""

from __future__ import annotations

import asyncio

from bot.app import cancel_and_wait


async def loop_that_loses_a_cancellation(started: asyncio.Queue) -> None:
    """Like the outcome loop: call after call through asyncio.wait_for."""
    while True:
        write = asyncio.get_running_loop().create_future()
        await started.put(write)
        await asyncio.wait_for(write, timeout=60)


async def test_a_lost_cancellation_is_repeated_until_the_loop_ends():
    started: asyncio.Queue = asyncio.Queue()
    task = asyncio.create_task(loop_that_loses_a_cancellation(started))
    write = await started.get()
    async with asyncio.timeout(10):
        write.set_result(None)  # the write completes in the same step as shutdown cancels
        await cancel_and_wait(task, every_s=0.1)
    assert task.cancelled()
    assert started.qsize() >= 1  # it did read on after the first cancellation: that one was lost


async def test_a_task_that_ends_with_an_error_is_waited_for_quietly():
    async def fails() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    await cancel_and_wait(task)
    assert isinstance(task.exception(), RuntimeError)
