"""Stopping background tasks, and work side by side that stops together (edoc.tasks)."""

from __future__ import annotations

import asyncio

import pytest

from edoc import errors, tasks


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


async def test_together_ends_the_others_before_raising_the_first_error_as_it_is() -> None:
    """asyncio.gather raised it with the others still running (stores half open when
    `edoc up`'s loop closed); a TaskGroup alone raises an ExceptionGroup, which the CLI
    would not know as edoc's error."""
    cleaned: list[str] = []

    async def opening() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)  # its cleanup takes a turn of the loop: awaited too
            cleaned.append("opening")

    async def refused() -> None:
        await asyncio.sleep(0)
        raise errors.UnknownStore("unknown store scheme 'foo'")

    with pytest.raises(errors.UnknownStore, match="'foo'"):
        await tasks.together(opening(), refused())
    assert cleaned == ["opening"]
