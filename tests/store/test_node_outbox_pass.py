"""NodeStore.outbox_pass gives what the due transfers' query and the next one's, one after
the other (tests/store/oracles.py), give on every backend."""

from __future__ import annotations

import datetime as dt

from edoc.store.node import NodeStore, OutboxPass
from tests.store import oracles
from tests.store.test_node import NOW, _queue


async def _separately(
    store: NodeStore, now: dt.datetime, limit: int, under_way: list[int]
) -> OutboxPass:
    due = await oracles.due_transfers(store, now, limit, under_way) if limit > 0 else []
    return OutboxPass(tuple(due), await oracles.next_transfer_at(store, now))


async def test_an_outbox_pass_reads_what_the_two_queries_do(node_store: NodeStore) -> None:
    assert await node_store.outbox_pass(NOW, 10, ()) == OutboxPass((), None)  # nothing at all
    ids = await _queue(node_store, [("a", 0), ("b", 2), ("a", 2), ("c", 1), ("d", 1), ("e", 0)])
    transfers = {t.outgoing_id: t.id for t in await oracles.due(node_store, NOW, 10, ())}
    later = NOW + dt.timedelta(seconds=60)
    await node_store.retry_transfer(transfers[ids[3]], later, "hub busy")
    under_way = [transfers[ids[1]], transfers[ids[4]]]
    for now in (NOW, later):
        for limit in (-1, 0, 1, 2, 10):
            for busy in ([], under_way):
                found = await node_store.outbox_pass(now, limit, busy)
                assert found == await _separately(node_store, now, limit, busy)
    found = await node_store.outbox_pass(NOW, 10, ())
    assert [t.outgoing_id for t in found.due] == [ids[1], ids[4], ids[0], ids[5]]
    assert found.next_at == later
    nothing_due = await node_store.outbox_pass(NOW, 10, list(transfers.values()))
    assert nothing_due == OutboxPass((), later)  # when next, with nothing due now
