"""What the SQLite hub store adds to the contract: how it finds what it reads."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from edoc.store.hub import Backlog, Receipt
from edoc.store.sqlite import hub_views
from edoc.store.sqlite.hub import SqliteHubStore
from tests.store import oracles
from tests.store.test_postgres import LEASE, NOW, PACKAGE, SENT


async def test_backlogs_read_the_waiting_deliveries_only(tmp_path: Path) -> None:
    """The hub's statistics and dashboard ask for the backlogs often; a national year
    holds millions of deliveries, the waiting ones a few: the count reads an index of
    those alone, not one entry per delivery ever made."""
    store = SqliteHubStore(tmp_path / "hub.sqlite")
    await store.open()
    try:
        for n in range(5):
            await store.accept(replace(PACKAGE, about=f"d{n}", digest=str(n)), NOW, SENT)
        (leased, *_) = await store.lease("H34", NOW, LEASE, 10, 0)
        await oracles.acknowledge(store, [Receipt(leased.id, SENT)], NOW)
        assert await store.backlogs() == [Backlog(node="H34", waiting=4)]
        plan = await store.db.execute_fetchall(
            "EXPLAIN QUERY PLAN SELECT node, COUNT(*) FROM deliveries"
            " WHERE delivered_at IS NULL GROUP BY node"
        )
        assert [row[3] for row in plan] == ["SCAN deliveries USING INDEX deliveries_waiting"]
    finally:
        await store.close()


@pytest.mark.parametrize("name", ["STAGES", "DOCUMENTS_OF", "RELAY_TIMES"])
async def test_the_dashboards_windows_are_read_by_index(tmp_path: Path, name: str) -> None:
    """The hub's dashboard asks for the packages accepted, or the deliveries acknowledged,
    since a time at each refresh: found by index, never by a scan of all ever kept."""
    store = SqliteHubStore(tmp_path / "hub.sqlite")
    await store.open()
    try:
        query = getattr(hub_views, name)
        plan = await store.db.execute_fetchall(
            "EXPLAIN QUERY PLAN " + query, [None] * query.count("?")
        )
        steps = [row[3] for row in plan]
        # a scan, or a search by kind alone (every document, or status, ever accepted)
        walks = [s for s in steps if s.startswith("SCAN") or s.endswith("(kind=?)")]
        assert not walks and not [s for s in steps if "TEMP B-TREE" in s], steps
    finally:
        await store.close()
