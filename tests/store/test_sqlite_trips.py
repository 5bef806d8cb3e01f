"""The SQLite stores' hot operations cost one trip to the connection's thread each (a
change at rest commits in it too): a trip per statement was most of what a document cost
the event loop in the store (59-63 trips per document and its 01, issue 21)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edoc.store.hub import DirectoryEntry, Receipt
from edoc.store.node import Event, NewAnswer, Tally
from edoc.store.sqlite.hub import SqliteHubStore
from edoc.store.sqlite.node import SqliteNodeStore
from tests.store.test_hub import H34, LEASE, NOW, SENT, SMALL
from tests.store.test_node import (
    DAY,
    DOCUMENT,
    FAR,
    RECEIVED,
    SENDER,
    answer,
    status,
    status_codes_win,
)
from tests.store.trips import counted

CHANGE = 1  # at rest: nobody to share a COMMIT with, it commits in the same call
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
        await hub.acknowledge_checked([leased.id], NOW, lambda _: [Receipt(leased.id, SENT)])
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


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[SqliteNodeStore]:
    store = SqliteNodeStore(tmp_path / "node.sqlite")
    await store.open()
    yield store
    await store.close()


async def test_a_document_and_its_01_through_the_sending_node_store(node: SqliteNodeStore) -> None:
    with counted(node) as trips:
        stored = await node.add_outgoing(DOCUMENT, NOW, [Tally(DAY, SENDER, FAR, "sent")])
    assert len(trips) == CHANGE  # what it gives back is not read back
    with counted(node) as trips:
        hub, _ = sorted((await node.outbox_pass(NOW, 10, ())).due, key=lambda t: t.route)
        await node.finish_transfer(hub, "done", "", Event("sent", ""), NOW, status_codes_win)
        await node.add_received_status(status("01"), Event("01", ""), NOW, status_codes_win)
        await node.outbox_pass(NOW, 10, ())  # the outbox's next pass
    assert len(trips) == READ + CHANGE + CHANGE + READ
    with counted(node) as trips:
        assert await node.outgoing(stored.id) is not None
        assert await node.outgoing_by_key(SENDER, "none") is None
        assert await node.find_outgoing(SENDER, DOCUMENT.document_id) is not None
    assert len(trips) == 3 * READ  # each with its recipients and transfers


async def test_a_document_through_the_receiving_node_store(node: SqliteNodeStore) -> None:
    with counted(node) as trips:
        received = await node.add_received_document(RECEIVED, answer("01"), NOW, [])
        (inbox,) = await node.inbox(SENDER, None, 10)
    assert len(trips) == CHANGE + READ
    with counted(node) as trips:  # received again: refused by the store, then found
        again = await node.add_received_document(RECEIVED, answer("01"), NOW, [])
    assert len(trips) == CHANGE + READ  # refused by the store, then found
    assert received.first and not again.first and again.inbox_id == inbox.id
    with counted(node) as trips:
        await node.add_answers([NewAnswer(inbox.id, answer("02"), lambda given: None)], NOW)
        await node.retry_transfer(1, NOW, "later")
        await node.retry_now("hub", NOW)
    assert len(trips) == 3 * CHANGE


async def test_an_outbox_pass_in_one_trip(node: SqliteNodeStore) -> None:
    await node.add_outgoing(DOCUMENT, NOW, [])
    with counted(node) as trips:
        found = await node.outbox_pass(NOW, 10, ())  # what is due, and when the next is
    assert len(trips) == READ and len(found.due) == 2
