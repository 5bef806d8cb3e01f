"""The hub's evidence: what it accepted, time-stamped in batches like a node's packages.

A hub keeps each package it accepts once, as it relays it (``packages``: its bytes in
the row, or a file), under a row id that only grows. Its batches (edoc.archive.batches)
stamp the SHA-256 of those bytes, so the operator can prove when the hub held a package;
they are kept in the hub's ``DATA_DIR/evidence``, under ``edoc serve hub --evidence-days``.
``edoc archive export --hub --document ID`` packs what the hub accepted about a document,
each package with its batch's proof, in an ASiC-E container ``edoc archive verify`` checks
as it checks a node's.

The hub's store is read through a read-only connection of its own (as edoc.archive.stored
reads a node's), its ``packages`` table as edoc.store.sqlite and edoc.store.postgres
make it. A package whose bytes retention dropped (edoc.hub.retention) is no longer kept
(EDOC-ARC-007), also when the pass drops it while its evidence is being read.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg

from edoc import errors
from edoc.archive import export
from edoc.archive.container import Proofs
from edoc.archive.evidence import Direction, KeptDocument, KeptMessage
from edoc.archive.stored import Mark, PackageRef, kept_package, read_only, settled_id
from edoc.keystore import KeyStore
from edoc.model import MessageKind

# (a package whose bytes retention dropped has nothing left to stamp)
_AFTER = (
    "SELECT id, body, path FROM packages WHERE id > {after}{settled}"
    " AND (body IS NOT NULL OR path <> '') ORDER BY id LIMIT {limit}"
)
_ABOUT = (
    "SELECT kind, status_code, accepted_at, body, path FROM packages"
    " WHERE about = {document} ORDER BY id"
)


def _after(mark: Mark, rows: list[Any]) -> tuple[list[PackageRef], Mark]:
    """The hub's packages in ``outgoing`` of the mark: it has one table of them."""
    refs = [PackageRef(None if r[1] is None else bytes(r[1]), r[2]) for r in rows]
    return refs, Mark(rows[-1][0] if rows else mark.outgoing, 0)


@dataclass(frozen=True)
class HubRow:
    """A package the hub accepted, as it keeps it."""

    kind: str
    status_code: str
    accepted_at: dt.datetime
    ref: PackageRef


def _row(row: Any, accepted_at: dt.datetime) -> HubRow:
    ref = PackageRef(None if row[3] is None else bytes(row[3]), row[4])
    return HubRow(row[0], row[1], accepted_at, ref)


class _Sqlite:
    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._db = connection

    async def kept_after(self, mark: Mark, limit: int) -> tuple[list[PackageRef], Mark]:
        query = _AFTER.format(after="?", settled="", limit="?")  # (one writer: in order)
        async with self._db.execute(query, (mark.outgoing, limit)) as cursor:
            return _after(mark, list(await cursor.fetchall()))

    async def about(self, document_id: str) -> list[HubRow]:
        async with self._db.execute(_ABOUT.format(document="?"), (document_id,)) as cursor:
            found = await cursor.fetchall()
        return [_row(r, dt.datetime.fromtimestamp(r[2] / 1000, dt.UTC)) for r in found]

    async def close(self) -> None:
        await self._db.close()


class _Postgres:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._db = connection

    async def kept_after(self, mark: Mark, limit: int) -> tuple[list[PackageRef], Mark]:
        # the instances accept side by side: rows commit out of their order (settled_id)
        settled = await settled_id(self._db, "packages")
        query = _AFTER.format(after="$1", settled=" AND id <= $3", limit="$2")
        return _after(mark, list(await self._db.fetch(query, mark.outgoing, limit, settled)))

    async def about(self, document_id: str) -> list[HubRow]:
        found = await self._db.fetch(_ABOUT.format(document="$1"), document_id)
        return [_row(r, r[2]) for r in found]

    async def close(self) -> None:
        await self._db.close()


HubPackages = _Sqlite | _Postgres


async def open_hub_packages(url: str) -> HubPackages:
    """A read-only view of the hub store's packages at ``url`` (as edoc.store.open_hub_store)."""
    db = await read_only(url, "hub")
    return _Sqlite(db) if isinstance(db, aiosqlite.Connection) else _Postgres(db)


async def hub_kept(packages: HubPackages, hub_org_id: str, document_id: str) -> KeptDocument:
    """What the hub accepted about ``document_id``: the document, then its statuses, as
    the hub relays them (their files not read here)."""
    rows = await packages.about(document_id)
    if not any(r.kind == MessageKind.DOCUMENT for r in rows):
        raise errors.NothingToArchive(f"the hub accepted no document {document_id}")
    _refuse_dropped(rows, document_id)
    document_first = sorted(rows, key=lambda r: r.kind != MessageKind.DOCUMENT)  # stable: by id
    return KeptDocument(hub_org_id, document_id, tuple(_kept(row) for row in document_first))


async def export_document(
    packages: HubPackages,
    keys: KeyStore,
    hub_org_id: str,
    document_id: str,
    target: Path,
    now: dt.datetime,
    proofs: Proofs | None = None,
) -> None:
    """The container of what the hub accepted about ``document_id``, each package with
    the proof of the hub's batch that stamped it (``proofs``), written to ``target`` as
    a node's is (edoc.archive.export.write_file), its packages read in chunks as they
    are copied, on this thread (a command's: the files are read on its loop)."""
    kept = await hub_kept(packages, hub_org_id, document_id)
    try:
        export.write_file(target, kept, keys, now, proofs)
    except errors.StorageError:
        # a file gone: a retention pass may have dropped its package since its row was
        # read (its row changes first). Said as such if its row says so now
        _refuse_dropped(await packages.about(document_id), document_id)
        raise


def _refuse_dropped(rows: list[HubRow], document_id: str) -> None:
    """NothingToArchive if retention dropped the bytes of any of ``rows``."""
    if any(r.ref.body is None and not r.ref.path for r in rows):
        raise errors.NothingToArchive(
            f"the hub no longer keeps the packages of {document_id} (serve hub"
            " --package-days); the nodes' archives keep them"
        )


def _kept(row: HubRow) -> KeptMessage:
    """What the hub kept of ``row``'s package, as it received it: its bytes, or its file."""
    kind = MessageKind(row.kind)
    return KeptMessage(
        Direction.RECEIVED, kind, row.status_code, row.accepted_at, kept_package(row.ref)
    )
