"""Reads the stores no longer offer one by one (the hub's intake asks HubStore.admission,
the outbox NodeStore.outbox_pass, an acknowledgement acknowledge_checked), kept here as
the tests' oracles: the separate queries the combined ones must agree with, and short
ways to ask the combined ones for one thing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any

from edoc.store.hub import HubStore, Receipt
from edoc.store.node import NodeStore, Progress, Transfer
from edoc.store.postgres.database import PostgresDatabase
from edoc.store.postgres.node_rows import DUE
from edoc.store.sqlite.database import SqliteDatabase
from edoc.store.sqlite.node_outbox import due_transfers as sqlite_due
from edoc.store.sqlite.node_outbox import next_transfer_at as sqlite_next


async def _rows(store: Any, sqlite_sql: str, postgres_sql: str, *params: Any) -> list[Any]:
    """One query's rows, in the dialect of ``store``'s backend."""
    if isinstance(store, SqliteDatabase):
        return await store._rows(sqlite_sql, params)
    assert isinstance(store, PostgresDatabase)
    return await store._rows(postgres_sql, *params)


# --- the hub ----------------------------------------------------------------------------------
async def queued_for(store: HubStore, recipient: str) -> int:
    """Deliveries to ``recipient`` not yet acknowledged."""
    sql = "SELECT COUNT(*) FROM deliveries WHERE recipient={} AND delivered_at IS NULL"
    rows = await _rows(store, sql.format("?"), sql.format("$1"), recipient)
    return int(rows[0][0])


async def codes_given(
    store: HubStore, responder: str, document_sender: str, about: str
) -> list[str]:
    """Status codes ``responder`` sent ``document_sender`` about document ``about``."""
    sql = (
        "SELECT p.status_code FROM packages p JOIN deliveries d ON d.package_id = p.id"
        " WHERE p.kind = 'status' AND p.sender = {} AND p.about = {} AND d.recipient = {}"
    )
    rows = await _rows(
        store,
        sql.format("?", "?", "?"),
        sql.format("$1", "$2", "$3"),
        responder,
        about,
        document_sender,
    )
    return [row[0] for row in rows]


async def unknown(store: HubStore, org_ids: Sequence[str]) -> list[str]:
    """Those of ``org_ids`` the address book does not know, in the order given."""
    known = {row[0] for row in await _rows(store, *["SELECT org_id FROM directory"] * 2)}
    return [org_id for org_id in org_ids if org_id not in known]


async def acknowledge(store: HubStore, receipts: Sequence[Receipt], now: dt.datetime) -> list[int]:
    """``receipts`` marked delivered, unchecked: the ids delivered for the first time."""
    ids = [receipt.delivery_id for receipt in receipts]
    first = await store.acknowledge_checked(ids, now, lambda found: receipts)
    return sorted(delivery.id for delivery in first)


# --- the node's outbox ------------------------------------------------------------------------
_NEXT_AT = "SELECT MIN(next_at) FROM transfers WHERE state = 'pending' AND next_at > $1"


async def due_transfers(
    store: NodeStore, now: dt.datetime, limit: int, under_way: Collection[int]
) -> list[Transfer]:
    """The transfers due, by their query alone."""
    if isinstance(store, SqliteDatabase):
        return await store._read(lambda db: sqlite_due(db, now, limit, under_way))
    assert isinstance(store, PostgresDatabase)
    return [Transfer(*row) for row in await store._rows(DUE, now, list(under_way), limit)]


async def next_transfer_at(store: NodeStore, after: dt.datetime) -> dt.datetime | None:
    """When the next pending transfer falls due after ``after``, by its query alone."""
    if isinstance(store, SqliteDatabase):
        return await store._read(lambda db: sqlite_next(db, after))
    assert isinstance(store, PostgresDatabase)
    found: dt.datetime | None = await store._value(_NEXT_AT, after)
    return found


async def outgoing_count(store: NodeStore) -> int:
    """Every outgoing message the node keeps (any backend)."""
    rows = await _rows(store, "SELECT COUNT(*) FROM outgoing", "SELECT COUNT(*) FROM outgoing")
    return int(rows[0][0])


async def due(
    store: NodeStore, now: dt.datetime, limit: int = 10, under_way: Collection[int] = ()
) -> list[Transfer]:
    """What an outbox pass at ``now`` finds due."""
    return list((await store.outbox_pass(now, limit, under_way)).due)


async def next_at(store: NodeStore, now: dt.datetime) -> dt.datetime | None:
    """When an outbox pass at ``now`` says the next falls due."""
    return (await store.outbox_pass(now, 0, ())).next_at


# Every recipient of every document, with its due date and when it first reached 06: what
# the statistics read before the store kept their counts (NodeStore.progress).
_EVERY_RECIPIENT_SQLITE = (
    "SELECT r.state, json_extract(o.summary, '$.due_date'),"
    " (SELECT json_extract(h.value, '$.at') FROM json_each(r.history) h"
    "  WHERE json_extract(h.value, '$.state') = '06' ORDER BY h.key LIMIT 1)"
    " FROM recipients r JOIN outgoing o ON o.id = r.outgoing_id WHERE o.kind = 'document'"
)
_EVERY_RECIPIENT_POSTGRES = """
SELECT r.state, o.summary ->> 'due_date',
    (SELECT h ->> 'at' FROM jsonb_array_elements(r.history) WITH ORDINALITY AS e (h, n)
        WHERE h ->> 'state' = '06' ORDER BY n LIMIT 1)
FROM recipients r JOIN outgoing o ON o.id = r.outgoing_id WHERE o.kind = 'document'
"""


async def progress_counted_anew(store: NodeStore) -> Progress:
    """NodeStore.progress counted from every recipient row, as the statistics once did."""
    rows = await _rows(store, _EVERY_RECIPIENT_SQLITE, _EVERY_RECIPIENT_POSTGRES)
    states: dict[str, int] = {}
    due = on_time = completed_due = 0
    for state, due_date, completed_at in rows:
        states[state] = states.get(state, 0) + 1
        if due_date is not None:
            due += 1
            completed = completed_at and dt.datetime.fromisoformat(completed_at).date()
            completed_due += bool(completed)
            on_time += bool(completed) and completed <= dt.date.fromisoformat(due_date)
    return Progress(dict(sorted(states.items())), due, on_time, completed_due)
