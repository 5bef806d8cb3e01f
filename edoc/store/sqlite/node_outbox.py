"""The node's SQLite reads for its outbox: the transfers due, and when the next falls due
(called on the connection's thread, alone or both in one trip: NodeStore.outbox_pass);
the packages of those carried (NodeStore.outgoing_packages)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Collection

from edoc.model import TransferState
from edoc.store.node import Transfer
from edoc.store.sqlite.database import from_ms, to_ms

_DUE = (
    # the package's size, not its bytes: SQLite reads a blob's length from the row's
    # header, not its pages (the bytes of 32 documents were 95 % of this query's time);
    # a package is bound as Python bytes, kept as a BLOB: its length() counts bytes
    "SELECT t.id, t.outgoing_id, t.route, t.attempts, o.path, length(o.body), o.created_at,"
    " o.kind, o.sender, o.document_id FROM transfers t INDEXED BY transfers_in_order"
    " JOIN outgoing o ON o.id = t.outgoing_id"
    " WHERE t.state=? AND t.next_at <= ?"
    " AND t.id NOT IN (SELECT value FROM json_each(?))"
    # first in, first out per sender, document and route (statuses in order)
    # (driven from the earlier outgoing rows of the same document, by index: the
    # other way round the check was quadratic in the backlog)
    " AND NOT EXISTS (SELECT 1 FROM outgoing f JOIN transfers e ON e.outgoing_id = f.id"
    "  WHERE f.sender = o.sender AND f.document_id = o.document_id AND f.id < o.id"
    "  AND e.state = ? AND e.route = t.route)"
    " ORDER BY t.priority DESC, t.id LIMIT ?"
)


def due_transfers(
    db: sqlite3.Connection, now: dt.datetime, limit: int, under_way: Collection[int]
) -> list[Transfer]:
    """The most urgent due transfers, except those ``under_way`` (still pending)."""
    pending = TransferState.PENDING
    rows = db.execute(_DUE, (pending, to_ms(now), json.dumps(list(under_way)), pending, limit))
    return [
        Transfer(r[0], r[1], r[2], r[3], r[4], r[5], from_ms(r[6]), r[7], r[8], r[9]) for r in rows
    ]


# the packages of the outgoing messages carried now, by primary key
PACKAGES = (
    "SELECT id, body FROM outgoing WHERE id IN (SELECT value FROM json_each(?))"
    " AND body IS NOT NULL"
)


def packages_of(outgoing_ids: Collection[int]) -> tuple[str]:
    """PACKAGES' parameter for ``outgoing_ids``."""
    return (json.dumps(sorted(set(outgoing_ids))),)


def next_transfer_at(db: sqlite3.Connection, after: dt.datetime) -> dt.datetime | None:
    """When the next retry falls due (transfers due already are under way)."""
    row = db.execute(
        "SELECT MIN(next_at) FROM transfers WHERE state=? AND next_at > ?",
        (TransferState.PENDING, to_ms(after)),
    ).fetchone()
    return from_ms(row[0]) if row and row[0] is not None else None
