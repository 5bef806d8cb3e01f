"""What a store holds, read beside edoc's own code: a test of a command that must leave a
store as it was compares its tables before and after. And a service's store made, as the
service makes it when it first opens one."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable

import asyncpg

from edoc.store import open_hub_store, open_node_store, sqlite_file
from edoc.store.hub import HubStore
from edoc.store.node import NodeStore


def tables(url: str) -> set[str]:
    """The tables of the store at ``url`` (none: no SQLite file, or an empty database)."""
    path = sqlite_file(url)
    if path is None:
        return asyncio.run(_database_tables(url))
    if not path.is_file():
        return set()
    with contextlib.closing(sqlite3.connect(path)) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


async def _database_tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        )
        return {row[0] for row in rows}
    finally:
        await conn.close()


def made(whose: str, url: str) -> None:
    """``whose`` service's store ("hub" or "node") made at ``url``: opened, then closed."""
    opening = open_hub_store if whose == "hub" else open_node_store
    asyncio.run(_opened_and_closed(opening, url))


async def _opened_and_closed(
    opening: Callable[[str], Awaitable[HubStore | NodeStore]], url: str
) -> None:
    await (await opening(url)).close()
