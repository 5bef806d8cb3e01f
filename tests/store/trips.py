"""Counting a SQLite store's trips to its connection's thread (each one a queue hop there and
a future back to the event loop: what the store costs the loop is mostly these)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from edoc.store.sqlite.database import SqliteDatabase


@contextmanager
def counted(store: Any) -> Iterator[list[object]]:
    """The functions ``store`` sends to its connection's thread while the block runs."""
    assert isinstance(store, SqliteDatabase)
    connection = store.db
    sent: list[object] = []
    real: Callable[..., Awaitable[Any]] = connection._execute

    async def counting(fn: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(fn)
        return await real(fn, *args, **kwargs)

    connection._execute = counting  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        del connection._execute  # the class's method again
