"""A value computed again only once it is older than asked, shared meanwhile by every
caller of this process (each hub instance keeps its own): for figures that read much of
a store, asked by many at once (dashboards refreshing, anyone reading the hub's public
statistics)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Recent(Generic[T]):
    """The dashboard's flow figures read every package of their windows: on a national
    day's store the hub's overview took 198 ms with them, 5 ms without, and a week's
    window holds five times as much, at every refresh of every open dashboard (every
    2 s). Callers that ask while it is computed take what that computation gives, its
    value or its failure, even with ``max_age`` 0: they are not each one more
    computation in a queue (a store in trouble would be asked once per caller)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._kept: tuple[float, T] | None = None  # when computed, and the value
        self._computing: asyncio.Task[T] | None = None

    async def value(self, max_age: float, compute: Callable[[], Awaitable[T]]) -> T:
        if self._computing is None:
            if self._kept is not None and self._clock() - self._kept[0] < max_age:
                return self._kept[1]
            self._computing = asyncio.ensure_future(self._compute(compute))
            self._computing.add_done_callback(self._done)
        # shielded: a caller that goes away (a closed request) stops no one else's answer
        return await asyncio.shield(self._computing)

    async def _compute(self, compute: Callable[[], Awaitable[T]]) -> T:
        value = await compute()
        self._kept = (self._clock(), value)  # (its age counts from when it is done)
        return value

    def _done(self, task: asyncio.Task[T]) -> None:
        """Over, however (even cancelled before it began): the next caller computes again.
        Its failure is its callers'; if they all went away, no "never retrieved" warning."""
        self._computing = None
        if not task.cancelled():
            task.exception()
