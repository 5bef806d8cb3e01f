"""The one way services run CPU-heavy work (parsing, signing, verifying): in a thread, off
the event loop, except small work over input held in memory, which stays on it."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

SMALL_BYTES = 1024 * 1024  # input held in memory up to this is small work


def held_small(source: bytes | Path) -> bool:
    """Whether work over ``source`` is small: its bytes in memory, at most SMALL_BYTES
    (not a file, which is large, streamed)."""
    return isinstance(source, bytes) and len(source) <= SMALL_BYTES


class Offload:
    """A thread pool owned by one service; lxml and OpenSSL release the GIL in their hot loops."""

    def __init__(self, workers: int = 4) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="edoc-crypto")

    async def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        context = contextvars.copy_context()  # keeps the request's log context
        call = functools.partial(context.run, function, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    async def run_small_here(
        self, small: bool, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``function`` here on the event loop when its input is ``small`` (held in memory,
        at most SMALL_BYTES), else in a thread as :meth:`run`.

        A thread gains nothing on such work: lxml, hashing and RSA over a few kilobytes
        hold the GIL nearly throughout, so the loop waits for it either way. Handing the
        work over and its answer back, and the GIL passing between the threads, cost a
        fifth of the CPU of a document and its 01 (bench/HISTORY.md, part nine). Work on
        a file stays in a thread: its parsing and hashing let the loop answer meanwhile."""
        if small:
            return function(*args, **kwargs)
        return await self.run(function, *args, **kwargs)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
