"""How SQLite reads what the dashboards ask: by the keys, never every package the hub
accepted nor every transfer a node ever made (the store has no statistics for the
planner to judge by)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edoc.model import MessageKind
from edoc.store import open_hub_store, open_node_store, sqlite_url
from edoc.store.sqlite import hub as hub_store
from edoc.store.sqlite import hub_views, node_views


async def test_a_trace_reads_by_the_packages_key(tmp_path: Path) -> None:
    """With an ORDER BY on the time accepted, SQLite read the hops through the packages'
    index by time: every package ever accepted (0.9 s for one trace in a million)."""
    store = await open_hub_store(sqlite_url(tmp_path / "hub.sqlite"))
    await store.close()
    document, status = MessageKind.DOCUMENT.value, MessageKind.STATUS.value
    params = (document, "000.00.12.H53", "D", status, "D", document, "000.00.12.H53", "D")
    with sqlite3.connect(tmp_path / "hub.sqlite") as db:
        plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {hub_views.TRACE}", params)]
    assert not any("packages_accepted" in step for step in plan), plan
    assert not any(step.startswith("SCAN") for step in plan), plan


async def test_a_nodes_troubled_documents_are_walked_newest_first(tmp_path: Path) -> None:
    """Through the index of troubled transfers, in its order: no sort of every transfer
    that ever failed."""
    store = await open_node_store(sqlite_url(tmp_path / "node.sqlite"))
    await store.close()
    with sqlite3.connect(tmp_path / "node.sqlite") as db:
        query = f"EXPLAIN QUERY PLAN {node_views.TROUBLED}"
        plan = [row[3] for row in db.execute(query, (MessageKind.DOCUMENT.value, 20))]
    assert plan[0] == "SCAN t USING INDEX transfers_troubled", plan
    assert not any("TEMP B-TREE" in step for step in plan), plan


async def test_a_lease_finds_a_statuss_chain_by_the_packages_key(tmp_path: Path) -> None:
    """The check that no earlier status of the chain is leased reads the chain's few
    packages, then their delivery to the recipient; by the recipient it read every
    delivery waiting for it, for each status offered."""
    store = await open_hub_store(sqlite_url(tmp_path / "hub.sqlite"))
    await store.close()
    with sqlite3.connect(tmp_path / "hub.sqlite") as db:
        query = f"EXPLAIN QUERY PLAN {hub_store._LEASE}"
        plan = [row[3] for row in db.execute(query, (1, "a", "H53", 0, 0, "a", 10))]
    chain = plan[plan.index("CORRELATED SCALAR SUBQUERY 1") + 1 :]
    assert chain[0].startswith("SEARCH q USING COVERING INDEX sqlite_autoindex_packages_1"), plan
    assert chain[1].startswith("SEARCH e USING INDEX sqlite_autoindex_deliveries_1"), plan
    assert not any(step.startswith("SCAN") for step in plan), plan


async def test_a_retention_step_reads_the_held_packages_from_where_the_last_stopped(
    tmp_path: Path,
) -> None:
    """Through the index of the packages whose bytes are held, from the step's start:
    not every package ever accepted, nor those an earlier step looked at."""
    store = await open_hub_store(sqlite_url(tmp_path / "hub.sqlite"))
    await store.close()
    held = "SEARCH {} USING INDEX packages_held (accepted_at>? AND accepted_at<?)"
    with sqlite3.connect(tmp_path / "hub.sqlite") as db:
        reach = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {hub_store._REACH}", (0, 1, 0))]
        query = f"EXPLAIN QUERY PLAN {hub_store._HELD_AND_DELIVERED}"
        step = [row[3] for row in db.execute(query, (0, 1))]
    assert reach == [held.format("packages")], reach
    assert step[0] == held.format("p"), step
    assert not any(line.startswith("SCAN") for line in step), step
