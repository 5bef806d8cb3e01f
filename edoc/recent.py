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
    2 s). Callers that ask while it is computed take what that computation gives, even
    with ``max_age`` 0: they are not each one more computation in a queue."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._kept: tuple[float, T] | None = None  # when computed, and the value
        self._computing = asyncio.Lock()  # callers asking at once: computed once
        self._computed = 0  # computations done, to tell those done while a caller waited

    async def value(self, max_age: float, compute: Callable[[], Awaitable[T]]) -> T:
        computed_before = self._computed
        async with self._computing:
            waited = self._computed > computed_before
            # those who waited for it take it as it is
            if self._kept is None or (not waited and self._clock() - self._kept[0] >= max_age):
                value = await compute()
                self._kept = (self._clock(), value)  # (its age counts from when it is done)
                self._computed += 1
            return self._kept[1]
