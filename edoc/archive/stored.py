"""Reading the evidence a node already keeps: the packages in its store.

A node keeps every package it sends (``outgoing``: documents and the statuses its
agencies answer) and every package it receives (``inbox``: documents and statuses),
each as its bytes in the row (``body``) or in a file (``path``). Exporting evidence
reads those rows, by organization and document id, through a read-only connection of
its own: the export is an operator's command beside a running node, and must not take
part in the node's transactions.

The queries read the tables of edoc.store.sqlite and edoc.store.postgres as they are;
when NodeStore grows a method for this, these become its implementation.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import aiosqlite
import asyncpg

from edoc import errors
from edoc.archive.evidence import Direction, KeptMessage, package_sha256
from edoc.model import MessageKind
from edoc.store import SQLITE, refuse_unless_held

_PACKAGES = (
    "SELECT 'sent', kind, status_code, created_at, body, path FROM outgoing"
    " WHERE sender = {org} AND document_id = {document}"
    " UNION ALL"
    " SELECT 'received', kind, status_code, received_at, body, path FROM inbox"
    " WHERE recipient = {org} AND document_id = {document}"
)
_DOCUMENTS = (
    "SELECT document_id, MIN(at) FROM ("
    " SELECT document_id, created_at AS at FROM outgoing WHERE sender = {org}"
    " AND kind = 'document' AND created_at >= {start} AND created_at < {end}"
    " UNION ALL"
    " SELECT document_id, received_at AS at FROM inbox WHERE recipient = {org}"
    " AND kind = 'document' AND received_at >= {start} AND received_at < {end}"
    ") AS kept GROUP BY document_id ORDER BY 2, 1"
)


_AFTER = "SELECT id, body, path FROM {table} WHERE id > {after}{settled} ORDER BY id LIMIT {limit}"

# PostgreSQL numbers a row when it is written, not when it is committed: with writers at
# once (a service's pooled connections, several hub instances) row 7 may commit after
# row 8, and a reader whose mark had moved past 8 never read 7 (never stamped). A writer
# holds ROW EXCLUSIVE on the table from before it draws a number until it ends, so once
# the writers under way when the last number drawn was read have ended, every row up to
# that number is committed or never will be. Waited for, not locked out: a reader takes
# no part in the service's transactions.
_LAST_NUMBER = (
    "SELECT COALESCE(pg_sequence_last_value(pg_get_serial_sequence($1, 'id')::regclass), 0)"
)
_WRITERS = (
    "SELECT virtualtransaction FROM pg_locks WHERE locktype = 'relation'"
    " AND relation = $1::text::regclass AND mode = 'RowExclusiveLock' AND granted"
    " AND pid <> pg_backend_pid()"
)
SETTLING = 2.0  # seconds the writers under way may take; then the pass fails, for the next
SETTLING_LOOK = 0.01  # seconds between two looks at them


async def settled_id(db: asyncpg.Connection, table: str) -> int:
    """The highest row number of ``table`` (PostgreSQL) up to which every row is
    committed or never will be (see _LAST_NUMBER)."""
    last = int(await db.fetchval(_LAST_NUMBER, table))
    writers = [row[0] for row in await db.fetch(_WRITERS, table)]
    deadline = time.monotonic() + SETTLING
    while writers:
        if time.monotonic() > deadline:
            raise errors.StorageError(
                f"a change to {table} has been under way for over {SETTLING:g} s: what was"
                " kept after it is read once it ends"
            )
        await asyncio.sleep(SETTLING_LOOK)
        still = _WRITERS + " AND virtualtransaction = ANY($2::text[])"
        writers = [row[0] for row in await db.fetch(still, table, writers)]
    return last


class Mark(NamedTuple):
    """How far a reader got: the last outgoing and inbox row it read (a hub's reader:
    the last package row, in ``outgoing``)."""

    outgoing: int
    inbox: int


class PackageRef(NamedTuple):
    """Where a kept package's bytes are: in its row (``body``), or in the file ``path``."""

    body: bytes | None
    path: str


@dataclass(frozen=True)
class StoredRow:
    """A package row of the store: outgoing ("sent") or inbox ("received")."""

    direction: str
    kind: str
    status_code: str
    at: dt.datetime
    body: bytes | None
    path: str


class StoredEvidence(Protocol):
    async def rows(self, org_id: str, document_id: str) -> list[StoredRow]: ...

    async def documents(self, org_id: str, start: dt.datetime, end: dt.datetime) -> list[str]:
        """Ids of the documents ``org_id`` sent or received from ``start`` to ``end``,
        in the order they were first kept."""
        ...

    async def kept_after(self, mark: Mark, limit: int) -> tuple[list[PackageRef], Mark]:
        """Up to ``limit`` packages of each table kept after ``mark``, and the mark past
        them (where each package is: its bytes are read off the loop, by package_digest)."""
        ...

    async def close(self) -> None: ...


def _after(mark: Mark, outgoing: list[Any], inbox: list[Any]) -> tuple[list[PackageRef], Mark]:
    packages = [PackageRef(None if r[1] is None else bytes(r[1]), r[2]) for r in outgoing + inbox]
    return packages, Mark(
        outgoing[-1][0] if outgoing else mark.outgoing, inbox[-1][0] if inbox else mark.inbox
    )


class _Sqlite:
    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._db = connection

    async def rows(self, org_id: str, document_id: str) -> list[StoredRow]:
        query = _PACKAGES.format(org="?", document="?")
        async with self._db.execute(query, (org_id, document_id) * 2) as cursor:
            found = await cursor.fetchall()
        return [
            StoredRow(r[0], r[1], r[2], dt.datetime.fromtimestamp(r[3] / 1000, dt.UTC), r[4], r[5])
            for r in found
        ]

    async def documents(self, org_id: str, start: dt.datetime, end: dt.datetime) -> list[str]:
        query = _DOCUMENTS.format(org="?", start="?", end="?")
        window = (org_id, int(start.timestamp() * 1000), int(end.timestamp() * 1000))
        async with self._db.execute(query, window * 2) as cursor:
            return [str(r[0]) for r in await cursor.fetchall()]

    async def kept_after(self, mark: Mark, limit: int) -> tuple[list[PackageRef], Mark]:
        found = []
        for table, after in (("outgoing", mark.outgoing), ("inbox", mark.inbox)):
            # (one writer at a time, numbering rows as it commits them: none is passed by)
            query = _AFTER.format(table=table, after="?", settled="", limit="?")
            async with self._db.execute(query, (after, limit)) as cursor:
                found.append(list(await cursor.fetchall()))
        return _after(mark, *found)

    async def close(self) -> None:
        await self._db.close()


class _Postgres:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._db = connection

    async def rows(self, org_id: str, document_id: str) -> list[StoredRow]:
        query = _PACKAGES.format(org="$1", document="$2")
        found = await self._db.fetch(query, org_id, document_id)
        return [StoredRow(r[0], r[1], r[2], r[3], r[4], r[5]) for r in found]

    async def documents(self, org_id: str, start: dt.datetime, end: dt.datetime) -> list[str]:
        query = _DOCUMENTS.format(org="$1", start="$2", end="$3")
        return [str(r[0]) for r in await self._db.fetch(query, org_id, start, end)]

    async def kept_after(self, mark: Mark, limit: int) -> tuple[list[PackageRef], Mark]:
        found = []
        for table, after in (("outgoing", mark.outgoing), ("inbox", mark.inbox)):
            settled = await settled_id(self._db, table)
            query = _AFTER.format(table=table, after="$1", settled=" AND id <= $3", limit="$2")
            found.append(list(await self._db.fetch(query, after, limit, settled)))
        return _after(mark, *found)

    async def close(self) -> None:
        await self._db.close()


# what a refusal of a store not there says makes it
_MAKES = {"hub": "`edoc serve hub` makes it", "node": "`edoc agency add` makes it"}


async def read_only(url: str, whose: str) -> aiosqlite.Connection | asyncpg.Connection:
    """A read-only connection to ``whose`` ("hub", "node") store at ``url``: none there, or
    the other service's (read until one of ``whose`` tables was missing: a fault), is
    refused (UnknownStore)."""
    await refuse_unless_held(url, whose, _MAKES[whose], new=False)
    try:
        if url.startswith(SQLITE):
            return await aiosqlite.connect(f"file:{url[len(SQLITE) :]}?mode=ro", uri=True)
        return await asyncpg.connect(url, timeout=10)
    except (OSError, aiosqlite.Error, asyncpg.PostgresError) as exc:
        raise errors.StorageError(
            f"the {whose} store does not open: {type(exc).__name__}"
        ) from None


async def open_stored(url: str) -> StoredEvidence:
    """A read-only view of the node store at ``url`` (as edoc.store.open_node_store)."""
    db = await read_only(url, "node")
    return _Sqlite(db) if isinstance(db, aiosqlite.Connection) else _Postgres(db)


def package_digest(ref: PackageRef) -> bytes:
    """A kept package's SHA-256, its file read in chunks: a large package (hundreds of MB)
    is never whole in memory to be stamped."""
    return package_sha256(kept_package(ref))


def kept_package(ref: PackageRef) -> bytes | Path:
    """Where a kept package is: its bytes, in its row; else its file (not read here)."""
    return Path(ref.path) if ref.body is None else bytes(ref.body)


async def kept_messages(
    stored: StoredEvidence, org_id: str, document_id: str
) -> tuple[KeptMessage, ...]:
    """Every package ``org_id``'s node kept about ``document_id``: the document first,
    then the statuses in the order they were kept. A package in a file is not read here
    (nor on the loop): it is hashed and copied in chunks where the container is written."""
    rows = await stored.rows(org_id, document_id)
    if not any(r.kind == MessageKind.DOCUMENT for r in rows):
        raise errors.NothingToArchive(f"{org_id} neither sent nor received {document_id}")
    messages = [
        KeptMessage(
            Direction(r.direction),
            MessageKind(r.kind),
            r.status_code,
            r.at,
            kept_package(PackageRef(r.body, r.path)),
        )
        for r in rows
    ]
    return tuple(sorted(messages, key=lambda m: (m.kind != MessageKind.DOCUMENT, m.at)))
