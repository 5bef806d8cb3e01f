"""The node's SQLite store: queries that run for every message stay cheap as backlogs grow
(what it does is in the contract, tests/store/test_node.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from edoc.store.sqlite.database import to_ms
from edoc.store.sqlite.node import SqliteNodeStore

NOW = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)


async def _backlog(store: SqliteNodeStore, rows: list[tuple[str, int, int]]) -> None:
    """Pending hub transfers: (document id, priority, seconds until due) each."""
    async with store._transaction() as db:
        for n, (document_id, priority, due_in) in enumerate(rows, start=1):
            await db.execute(
                "INSERT INTO outgoing (id, kind, sender, document_id, status_code, priority,"
                " path, summary, created_at) VALUES (?, 'status', 'S', ?, '02', ?, 'p', '{}', 0)",
                (n, document_id, priority),
            )
            await db.execute(
                "INSERT INTO transfers (outgoing_id, route, state, next_at, priority)"
                " VALUES (?, 'hub', 'pending', ?, ?)",
                (n, to_ms(NOW + dt.timedelta(seconds=due_in)), priority),
            )


async def test_due_transfers_does_not_sort_the_whole_backlog(tmp_path: Path) -> None:
    """Sorting every due transfer on each pick made an as-fast-as-possible replay slow
    down in proportion to its backlog; the query walks an index in the wanted order."""
    store = SqliteNodeStore(tmp_path / "node.sqlite")
    await store.open()
    statements: list[str] = []
    try:
        await _backlog(store, [(f"d{n}", n % 3, -n % 7) for n in range(50)])
        await store.db.set_trace_callback(statements.append)
        await store.due_transfers(NOW, 32, ())
        (query,) = [s for s in statements if "FROM transfers" in s]
        plan = [row[3] for row in await store.db.execute_fetchall("EXPLAIN QUERY PLAN " + query)]
        assert not [step for step in plan if "TEMP B-TREE" in step], plan
    finally:
        await store.close()
