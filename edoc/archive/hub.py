"""The hub's evidence: what it accepted, time-stamped in batches like a node's packages.

A hub keeps each package it accepts once, as it relays it (``packages``: its bytes in
the row, or a file), under a row id that only grows. Its batches (edoc.archive.batches)
stamp the SHA-256 of those bytes, so the operator can prove when the hub held a package;
they are kept in the hub's ``DATA_DIR/evidence``, under ``edoc serve hub --evidence-days``.

The hub's store is read through a read-only connection of its own (as edoc.archive.stored
reads a node's), its ``packages`` table as edoc.store.sqlite and edoc.store.postgres
make it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg

from edoc import errors
from edoc.archive.stored import Mark, PackageRef
from edoc.store import SQLITE

_AFTER = "SELECT id, body, path FROM packages WHERE id > {after} ORDER BY id LIMIT {limit}"
_ONE = "SELECT body, path FROM packages WHERE id = {id}"


def _after(mark: Mark, rows: list[Any]) -> tuple[list[PackageRef], Mark]:
    """The hub's packages in ``outgoing`` of the mark: it has one table of them."""
    refs = [PackageRef(None if r[1] is None else bytes(r[1]), r[2]) for r in rows]
    return refs, Mark(rows[-1][0] if rows else mark.outgoing, 0)


def _one(row: Any) -> PackageRef | None:
    return None if row is None else PackageRef(None if row[0] is None else bytes(row[0]), row[1])


class _Sqlite:
    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._db = connection

    async def kept_after(self, mark: Mark, limit: int) -> tuple[list[PackageRef], Mark]:
        query = _AFTER.format(after="?", limit="?")
        async with self._db.execute(query, (mark.outgoing, limit)) as cursor:
            return _after(mark, list(await cursor.fetchall()))

    async def package(self, hub_id: int) -> PackageRef | None:
        async with self._db.execute(_ONE.format(id="?"), (hub_id,)) as cursor:
            return _one(await cursor.fetchone())

    async def close(self) -> None:
        await self._db.close()


class _Postgres:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._db = connection

    async def kept_after(self, mark: Mark, limit: int) -> tuple[list[PackageRef], Mark]:
        query = _AFTER.format(after="$1", limit="$2")
        return _after(mark, list(await self._db.fetch(query, mark.outgoing, limit)))

    async def package(self, hub_id: int) -> PackageRef | None:
        return _one(await self._db.fetchrow(_ONE.format(id="$1"), hub_id))

    async def close(self) -> None:
        await self._db.close()


HubPackages = _Sqlite | _Postgres


async def open_hub_packages(url: str) -> HubPackages:
    """A read-only view of the hub store's packages at ``url`` (as edoc.store.open_hub_store)."""
    try:
        if url.startswith(SQLITE):
            path = Path(url[len(SQLITE) :])
            if not path.is_file():
                raise errors.UnknownStore(f"no hub store at {path}")
            return _Sqlite(await aiosqlite.connect(f"file:{path}?mode=ro", uri=True))
        if url.startswith(("postgresql://", "postgres://")):
            return _Postgres(await asyncpg.connect(url, timeout=10))
    except (OSError, aiosqlite.Error, asyncpg.PostgresError) as exc:
        raise errors.StorageError(f"the hub store does not open: {type(exc).__name__}") from None
    raise errors.UnknownStore("a hub store's URL is sqlite:///path or postgresql://host/db")
