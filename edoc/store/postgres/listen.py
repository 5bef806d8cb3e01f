"""LISTEN on a connection of its own: a hint that another instance changed something.

PostgreSQL sends a NOTIFY to the sessions listening when the transaction that raised it
commits; one sent while the listening connection was down is lost, and a connection
whose server went away is noticed only when something is sent on it. So the listener
checks its connection now and then, reconnects when it is lost, and then wakes everyone
once (what was notified meanwhile is unknown). Whoever is woken still asks the store:
a notification says "look", never what to do, and the callers' periodic polls remain
the safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog

from edoc import tasks
from edoc.store.postgres.database import CONNECT_TIMEOUT, FAILURES

log = structlog.get_logger("edoc.store")

KEEPALIVE = 5.0  # seconds between checks that the listening connection still answers
RECONNECT = 1.0  # seconds between attempts to connect again
EVERYONE = ""  # the payload of the wake-up after a reconnect: every waiter looks


class Listener:
    """Calls ``wake(payload)`` for each notification on ``channel`` (and ``wake("")`` after
    a reconnect), until closed."""

    def __init__(self, url: str, channel: str, wake: Callable[[str], None]) -> None:
        self.url = url
        self.channel = channel
        self.wake = wake
        self.connected = asyncio.Event()  # set while listening (tests wait for it)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"listen {self.channel}")

    async def listening(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for it to listen (it keeps trying after that)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.connected.wait()

    async def close(self) -> None:
        task, self._task = self._task, None
        await tasks.stop(task)

    def _notified(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        self.wake(str(payload))

    async def _run(self) -> None:
        first = True
        while True:
            try:
                conn = await asyncpg.connect(self.url, timeout=CONNECT_TIMEOUT)
            except FAILURES as exc:
                log.warning("store notifications unavailable", reason=str(exc))
                await asyncio.sleep(RECONNECT)
                continue
            try:
                await conn.add_listener(self.channel, self._notified)
                self.connected.set()
                if not first:
                    self.wake(EVERYONE)
                first = False
                await self._until_lost(conn)
            except FAILURES as exc:
                log.warning("store notifications lost", reason=str(exc))
            finally:
                self.connected.clear()
                with contextlib.suppress(*FAILURES):
                    await conn.close(timeout=1)

    @staticmethod
    async def _until_lost(conn: asyncpg.Connection) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _: lost.set())
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(KEEPALIVE):
                    await lost.wait()
            if not lost.is_set():
                await conn.execute("SELECT 1", timeout=KEEPALIVE)
        await asyncio.sleep(RECONNECT)
