"""The node's SQLite store: queries that run for every message stay cheap as backlogs grow
(what it does is in the contract, tests/store/test_node.py)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from edoc import wire
from edoc.model import MessageKind
from edoc.store.node import NewOutgoing
from edoc.store.sqlite.database import to_ms
from edoc.store.sqlite.node import SqliteNodeStore
from edoc.store.sqlite.node_outbox import PACKAGES, packages_of
from edoc.store.sqlite.node_tables import ADDED_COLUMNS, SCHEMA
from edoc.store.sqlite.node_writes import OUTGOING, insert_outgoing, outgoing
from tests.store.test_node import DOCUMENT
from tests.store.trips import counted

NOW = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)


async def _backlog(store: SqliteNodeStore, rows: list[tuple[str, int, int]]) -> None:
    """Pending hub transfers: (document id, priority, seconds until due) each."""

    def add(db: sqlite3.Connection) -> None:
        for n, (document_id, priority, due_in) in enumerate(rows, start=1):
            db.execute(
                "INSERT INTO outgoing (id, kind, sender, document_id, status_code, priority,"
                " path, summary, created_at) VALUES (?, 'status', 'S', ?, '02', ?, 'p', '{}', 0)",
                (n, document_id, priority),
            )
            db.execute(
                "INSERT INTO transfers (outgoing_id, route, state, next_at, priority)"
                " VALUES (?, 'hub', 'pending', ?, ?)",
                (n, to_ms(NOW + dt.timedelta(seconds=due_in)), priority),
            )

    await store._change(add)


async def test_due_transfers_does_not_sort_the_whole_backlog(tmp_path: Path) -> None:
    """Sorting every due transfer on each pick made an as-fast-as-possible replay slow
    down in proportion to its backlog; the query walks an index in the wanted order."""
    store = SqliteNodeStore(tmp_path / "node.sqlite")
    await store.open()
    statements: list[str] = []
    try:
        await _backlog(store, [(f"d{n}", n % 3, -n % 7) for n in range(50)])
        await store.reader.set_trace_callback(statements.append)
        await store.outbox_pass(NOW, 32, ())
        (query,) = [s for s in statements if "JOIN outgoing" in s]  # the due transfers
        plan = [row[3] for row in await store.db.execute_fetchall("EXPLAIN QUERY PLAN " + query)]
        assert not [step for step in plan if "TEMP B-TREE" in step], plan
    finally:
        await store.close()


async def test_the_packages_of_a_request_are_read_by_key_in_one_trip(tmp_path: Path) -> None:
    """The outbox reads a request's packages as it carries it (up to wire.BATCH_PACKAGES):
    one trip, each row found by its key, however many messages the node has sent."""
    store = SqliteNodeStore(tmp_path / "node.sqlite")
    await store.open()
    try:
        packages = {f"D{n}": bytes([n]) * (n + 1) for n in range(wire.BATCH_PACKAGES + 1)}
        ids = {}
        for document_id, body in packages.items():
            new = replace(DOCUMENT, document_id=document_id, body=body)
            ids[(await store.add_outgoing(new, NOW, [])).id] = body
        with counted(store) as trips:
            read = await store.outgoing_packages(list(ids))
        assert len(trips) == 1 and read == ids
        plan = await store.db.execute_fetchall(
            "EXPLAIN QUERY PLAN " + PACKAGES, packages_of(list(ids))
        )
        assert [row[3] for row in plan if "outgoing" in row[3]] == [
            "SEARCH outgoing USING INTEGER PRIMARY KEY (rowid=?)"
        ]
    finally:
        await store.close()


def _empty_store() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.executescript(SCHEMA)
    for table, column, declaration in ADDED_COLUMNS:
        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
    return db


_ORG = st.sampled_from(["000.00.12.H53", "000.00.07.H53", "000.00.00.H34", "Ä.1", "a.2", "Z"])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)


@settings(max_examples=80, deadline=None)
@given(
    recipients=st.lists(_ORG, min_size=1, max_size=4, unique=True),
    local_mask=st.lists(st.booleans(), min_size=4, max_size=4),
    kind=st.sampled_from([MessageKind.DOCUMENT, MessageKind.STATUS, "document"]),
    summary=st.dictionaries(st.text(max_size=4), _JSON, max_size=3),
    priority=st.integers(-3, 3),
    at_us=st.integers(0, 10**15),
)
def test_an_added_outgoing_message_is_as_it_reads_back(
    recipients: list[str],
    local_mask: list[bool],
    kind: str,
    summary: dict[str, Any],
    priority: int,
    at_us: int,
) -> None:
    """add_outgoing gives back what it wrote without reading it: the same as outgoing()."""
    new = NewOutgoing(
        kind=kind,
        sender="S",
        document_id="D",
        status_code="",
        idempotency_key=None,
        priority=priority,
        path="",
        summary=summary,
        recipients=tuple(recipients),
        local=tuple(r for r, local in zip(recipients, local_mask, strict=False) if local),
    )
    now = dt.datetime.fromtimestamp(at_us / 10**6, dt.UTC)
    db = _empty_store()
    try:
        db.execute(
            "INSERT INTO outgoing (kind, sender, document_id, status_code, priority,"
            " path, summary, created_at) VALUES ('status', 'S', 'E', '', 0, '', '{}', 0)"
        )
        written = insert_outgoing(db, new, now)
        row = db.execute(f"{OUTGOING} WHERE id=?", (written.id,)).fetchone()
        read = outgoing(db, row)
        assert written == read
        assert repr(written) == repr(read)  # plain str, not the enums it was given
    finally:
        db.close()
