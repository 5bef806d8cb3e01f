"""Stopping background tasks: each cancelled, then awaited, so that none is still running
(or logs "Task was destroyed but it is pending") once its owner is closed."""

from __future__ import annotations

import asyncio
import contextlib


async def stop(*tasks: asyncio.Task[object] | None) -> None:
    """Cancel ``tasks`` (None: nothing started), then wait for each to end."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError):
            await task
