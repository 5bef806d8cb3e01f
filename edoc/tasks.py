"""Stopping background tasks: each cancelled, then awaited, so that none is still running
(or logs "Task was destroyed but it is pending") once its owner is closed; and work run
side by side that ends together when one part fails (together)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any


async def stop(*tasks: asyncio.Task[object] | None) -> None:
    """Cancel ``tasks`` (None: nothing started), then wait for each to end."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def together(*work: Coroutine[Any, Any, object]) -> None:
    """Run ``work`` side by side; when one fails, the others are cancelled and awaited
    before its error is raised, as it is (the first, not in an ExceptionGroup: callers
    handle edoc's errors). asyncio.gather left them running on a loop about to close: a
    store still opening then failed on the closed loop from its thread (aiosqlite), a
    traceback each."""
    try:
        async with asyncio.TaskGroup() as group:
            for one in work:
                group.create_task(one)
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
