"""What the SQLite hub store adds to the contract: how it finds what it reads."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from edoc.store.hub import Backlog, Receipt
from edoc.store.sqlite import hub_views
from edoc.store.sqlite.database import from_ms, to_ms
from edoc.store.sqlite.hub import BACKLOGS, SqliteHubStore
from tests.store import oracles
from tests.store.test_hub import LEASE, NOW, SENT, SMALL


async def test_the_lease_and_the_backlogs_read_the_waiting_deliveries_only(
    tmp_path: Path,
) -> None:
    """Both ask often (the backlogs at every statistics or dashboard request); a national
    year holds millions of deliveries, the waiting ones a few: both read an index of
    those alone, the lease in its order, not one entry per delivery ever made."""
    store = SqliteHubStore(tmp_path / "hub.sqlite")
    await store.open()
    statements: list[str] = []
    try:
        for n in range(5):
            await store.accept(replace(SMALL, about=f"d{n}", digest=str(n)), NOW, SENT)
        await store.db.set_trace_callback(statements.append)
        (leased, *_) = await store.lease("H34", NOW, LEASE, 10, 0)
        await oracles.acknowledge(store, [Receipt(leased.id, SENT)], NOW)
        assert await store.backlogs() == [Backlog(node="H34", waiting=4)]
        (lease,) = [s for s in statements if s.startswith("UPDATE deliveries SET lease_until")]
        for query in (lease, BACKLOGS):
            plan = await store.db.execute_fetchall("EXPLAIN QUERY PLAN " + query)
            steps = [row[3] for row in plan]
            assert any("deliveries_to_lease" in step for step in steps), steps
            # (a status's chain: its delivery to the recipient, test_sqlite_plans.py)
            chain = "(package_id=? AND recipient=? AND rowid<?)"
            read = ("deliveries_to_lease", "rowid=?", chain)
            others = [s for s in steps if not any(index in s for index in read)]
            if query == BACKLOGS:  # the stuck ones among them: an index of those alone
                assert "SCAN deliveries USING INDEX deliveries_stuck" in others, steps
                others = [s for s in others if "deliveries_stuck" not in s]
            assert not [s for s in others if "deliveries" in s or "TEMP B-TREE" in s], steps
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


def test_a_time_read_back_is_stored_as_it_was() -> None:
    """From 2038 a float timestamp fell a millisecond short of some (a retention step
    starting after the moment the one before reached, its packages looked at again)."""
    for ms in (2_147_490_000_002, 1_796_341_697_861, 0):
        assert to_ms(from_ms(ms)) == ms
