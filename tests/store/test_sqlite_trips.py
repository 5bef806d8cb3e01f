"""The SQLite stores' hot operations cost one trip to the connection's thread each (a
change one more, its COMMIT): a trip per statement was most of what a document cost the
event loop in the store (59-63 trips per document and its 01, issue 21)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edoc.store.hub import DirectoryEntry, Receipt
from edoc.store.sqlite.hub import SqliteHubStore
from tests.store.test_hub import H34, LEASE, NOW, SENT, SMALL
from tests.store.trips import counted

CHANGE = 2  # the change's own call, and its batch's COMMIT (a batch of one at rest)
READ = 1


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[SqliteHubStore]:
    store = SqliteHubStore(tmp_path / "hub.sqlite")
    await store.open()
    yield store
    await store.close()


async def test_a_document_through_the_hub_store(hub: SqliteHubStore) -> None:
    await hub.add_node("H34", "t")
    with counted(hub) as trips:
        await hub.accept(SMALL, NOW, SENT)
    assert len(trips) == CHANGE
    with counted(hub) as trips:
        (leased,) = await hub.lease("H34", NOW, LEASE, 32, 1000)  # with what it hands out
    assert len(trips) == CHANGE
    with counted(hub) as trips:
        await hub.acknowledge([Receipt(leased.id, SENT)], NOW)
    assert len(trips) == CHANGE
    with counted(hub) as trips:
        assert await hub.node_for_token("t") == "H34"
        assert await hub.lease("H34", NOW, LEASE, 32, 1000) == []
    assert len(trips) == READ + CHANGE


async def test_the_address_book_in_one_trip_each(hub: SqliteHubStore) -> None:
    with counted(hub) as trips:
        assert await hub.register([DirectoryEntry(H34.org_id, "A", "agency", "H34")]) == 1
    assert len(trips) == CHANGE  # with the version it gives back
    with counted(hub) as trips:
        directory = await hub.directory()
    assert len(trips) == READ
    assert directory.version == 1 and [e.org_id for e in directory.entries] == [H34.org_id]
