"""Stopping background tasks (edoc.tasks)."""

from __future__ import annotations

import asyncio

from edoc import tasks


async def test_stop_cancels_each_task_and_waits_until_it_has_ended() -> None:
    cleaned: list[str] = []

    async def forever(name: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)  # its cleanup takes a turn of the loop: awaited too
            cleaned.append(name)

    running = [asyncio.create_task(forever(name)) for name in ("a", "b")]
    finished = asyncio.create_task(asyncio.sleep(0))
    await finished
    await asyncio.sleep(0)
    await tasks.stop(*running, finished, None)
    assert sorted(cleaned) == ["a", "b"]
    assert all(task.cancelled() for task in running) and not finished.cancelled()
