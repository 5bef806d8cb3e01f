"""Counting a SQLite store's trips to its connections' threads (each one a queue hop there
and a future back to the event loop: what the store costs the loop is mostly these)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import aiosqlite

from edoc.store.sqlite.database import SqliteDatabase


@contextmanager
def counted(store: Any) -> Iterator[list[object]]:
    """The functions ``store`` sends to its connections' threads (the one for changes and
    the one for reads) while the block runs."""
    assert isinstance(store, SqliteDatabase)
    sent: list[object] = []
    with ExitStack() as stack:
        for connection in (store.db, store.reader):
            stack.enter_context(_counting(connection, sent))
        yield sent


@contextmanager
def _counting(connection: aiosqlite.Connection, sent: list[object]) -> Iterator[None]:
    real: Callable[..., Awaitable[Any]] = connection._execute

    async def counting(fn: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(fn)
        return await real(fn, *args, **kwargs)

    connection._execute = counting  # type: ignore[method-assign]
    try:
        yield
    finally:
        del connection._execute  # the class's method again
