"""What the operator's dashboards ask the stores (edoc.dashboard), run against every
backend: a node's newest and troubled documents and its outbox backlog; the hub's trace of
one document."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from edoc.store.hub import Addressee, HubStore, NewPackage, Receipt, Tally
from edoc.store.node import Event, NodeStore
from tests.store import oracles
from tests.store.test_hub import NOW, SENT, SMALL
from tests.store.test_node import DOCUMENT, status_codes_win

H34 = Addressee("000.00.00.H34", "H34")
H23 = Addressee("000.00.07.H23", "H23")


async def test_newest_documents_first_and_only_troubled_ones_when_asked(
    node_store: NodeStore,
) -> None:
    calm, retried, failed, done = [
        await node_store.add_outgoing(replace(DOCUMENT, document_id=f"D{n}", local=()), NOW, [])
        for n in range(4)
    ]
    transfers = {t.outgoing_id: t for t in await oracles.due(node_store, NOW, 10, ())}
    later = NOW + dt.timedelta(minutes=1)
    await node_store.retry_transfer(transfers[retried.id].id, later, "hub down")
    for stored, state in ((failed, "failed"), (done, "done")):
        await node_store.finish_transfer(
            transfers[stored.id], state, "", Event(state, ""), NOW, status_codes_win
        )
    assert await node_store.recent_outgoing(3, troubled=False) == [done.id, failed.id, retried.id]
    assert await node_store.recent_outgoing(10, troubled=True) == [failed.id, retried.id]
    assert await node_store.recent_outgoing(1, troubled=True) == [failed.id]
    assert await node_store.pending_transfers() == {"hub": 2}  # calm and retried
    assert calm.id not in await node_store.recent_outgoing(10, troubled=True)


async def test_a_document_troubled_on_both_routes_is_listed_once(node_store: NodeStore) -> None:
    both = await node_store.add_outgoing(DOCUMENT, NOW, [])  # a remote and a local recipient
    transfers = await oracles.due(node_store, NOW, 10, ())
    assert {t.outgoing_id for t in transfers} == {both.id} and len(transfers) == 2
    for transfer in transfers:
        await node_store.finish_transfer(
            transfer, "failed", "", Event("failed", ""), NOW, status_codes_win
        )
    status = replace(DOCUMENT, kind="status", status_code="03", local=())
    answered = await node_store.add_outgoing(status, NOW, [])
    (transfer,) = await oracles.due(node_store, NOW, 10, ())
    await node_store.retry_transfer(transfer.id, NOW + dt.timedelta(minutes=1), "hub down")
    assert answered.id not in await node_store.recent_outgoing(10, troubled=True)  # a status
    assert await node_store.recent_outgoing(10, troubled=True) == [both.id]


async def test_a_trace_is_the_document_then_the_statuses_back(hub_store: HubStore) -> None:
    document = replace(SMALL, about="D1", recipients=(H34, H23))
    await hub_store.accept(document, NOW, SENT)
    await hub_store.accept(replace(SMALL, about="D2", digest="other"), NOW, SENT)
    later = NOW + dt.timedelta(minutes=1)
    back = NewPackage(
        kind="status",
        sender=H34.org_id,
        about="D1",
        status_code="01",
        business_type=0,
        priority=0,
        digest="3",
        path="",
        size=10,
        recipients=(Addressee(SMALL.sender, "H53"),),
        body=b"s" * 10,
    )
    await hub_store.accept(back, later, Tally(later.date(), H34.org_id, "status_sent", ""))
    hops = await hub_store.trace(SMALL.sender, "D1")
    assert [(h.kind, h.sender, h.recipient, h.node, h.status_code) for h in hops] == [
        ("document", SMALL.sender, H34.org_id, "H34", ""),  # 000.00.00… before 000.00.07…
        ("document", SMALL.sender, H23.org_id, "H23", ""),
        ("status", H34.org_id, SMALL.sender, "H53", "01"),
    ]
    assert [h.accepted_at for h in hops] == [NOW, NOW, later]
    assert {h.delivered_at for h in hops} == {None}
    assert await hub_store.trace(SMALL.sender, "D3") == []


def status_of(responder: Addressee, about: str, code: str) -> NewPackage:
    return NewPackage(
        kind="status",
        sender=responder.org_id,
        about=about,
        status_code=code,
        business_type=0,
        priority=0,
        digest=f"{responder.node}{code}",
        path="",
        size=10,
        recipients=(Addressee(SMALL.sender, "H53"),),
        body=b"s" * 10,
    )


async def test_stages_are_each_recipient_then_the_statuses_of_documents_since(
    hub_store: HubStore,
) -> None:
    before = NOW - dt.timedelta(days=2)
    await hub_store.accept(replace(SMALL, about="OLD", digest="old"), before, SENT)
    await hub_store.accept(replace(SMALL, about="D1", recipients=(H34, H23)), NOW, SENT)
    later = NOW + dt.timedelta(minutes=3)
    for package in (status_of(H34, "D1", "01"), status_of(H34, "OLD", "01")):
        await hub_store.accept(package, later, Tally(later.date(), H34.org_id, "status_sent", ""))
    stages = await hub_store.stages(NOW - dt.timedelta(hours=1))
    assert sorted((s.about, s.party, s.status_code, s.at) for s in stages) == [
        ("D1", H34.org_id, "", NOW),
        ("D1", H34.org_id, "01", later),
        ("D1", H23.org_id, "", NOW),
    ]


async def test_relay_times_are_accepted_to_acknowledged_since(hub_store: HubStore) -> None:
    await hub_store.accept(replace(SMALL, recipients=(H34, H23)), NOW, SENT)
    leased = await hub_store.lease("H34", NOW, dt.timedelta(minutes=1), 10, 0)
    acked = NOW + dt.timedelta(seconds=90)
    receipts = [Receipt(d.id, Tally(acked.date(), d.recipient, "received", "")) for d in leased]
    assert await oracles.acknowledge(hub_store, receipts, acked)
    assert await hub_store.relay_times(NOW) == [dt.timedelta(seconds=90)]  # H23 waits still
    assert await hub_store.relay_times(acked + dt.timedelta(seconds=1)) == []


async def test_a_failed_transfer_reopens_with_its_failed_recipients_queued(
    node_store: NodeStore,
) -> None:
    stored = await node_store.add_outgoing(DOCUMENT, NOW, [])  # FAR by the hub, NEIGHBOUR local
    transfers = {t.route: t for t in await oracles.due(node_store, NOW, 10, ())}
    failed = Event("failed", "EDOC-HUB-001: unknown recipient")
    await node_store.finish_transfer(
        transfers["hub"], "failed", "refused", failed, NOW, status_codes_win
    )
    await node_store.finish_transfer(
        transfers["local"], "done", "", Event("delivered", ""), NOW, status_codes_win
    )
    later = NOW + dt.timedelta(minutes=5)
    assert not await node_store.reopen_transfer(stored.id, "local", later, "retried")  # done
    assert await node_store.reopen_transfer(stored.id, "hub", later, "retried by the operator")
    assert not await node_store.reopen_transfer(stored.id, "hub", later, "again")  # pending now
    assert not await node_store.reopen_transfer(stored.id + 99, "hub", later, "no such")
    reopened = await node_store.outgoing(stored.id)
    assert reopened is not None
    by_route = {t.route: t for t in reopened.transfers}
    assert (by_route["hub"].state, by_route["hub"].attempts) == ("pending", 1)
    assert by_route["hub"].last_error == "refused"  # why it failed, until it is tried again
    assert by_route["local"].state == "done"
    states = {r.org_id: r for r in reopened.recipients}
    far, neighbour = states[DOCUMENT.recipients[0]], states[DOCUMENT.recipients[1]]
    assert (far.state, neighbour.state) == ("queued", "delivered")
    assert [(h.state, h.detail) for h in far.history][-2:] == [
        ("failed", "EDOC-HUB-001: unknown recipient"),
        ("queued", "retried by the operator"),
    ]
    assert far.history[-1].at == later
    (due,) = await oracles.due(node_store, later, 10, ())
    assert (due.outgoing_id, due.route) == (stored.id, "hub")


async def test_documents_of_an_organization_on_a_day_sent_or_received(
    hub_store: HubStore,
) -> None:
    day = dt.timedelta(days=1)
    await hub_store.accept(replace(SMALL, about="SENT", recipients=(H34,)), NOW, SENT)
    await hub_store.accept(replace(SMALL, about="OTHER", digest="o", recipients=(H23,)), NOW, SENT)
    to_h34 = replace(SMALL, sender=H23.org_id, about="IN", digest="i", recipients=(H34,))
    await hub_store.accept(to_h34, NOW + dt.timedelta(hours=1), SENT)
    await hub_store.accept(replace(to_h34, about="LATE", digest="l"), NOW + day, SENT)
    start = NOW.replace(hour=0)
    assert await hub_store.documents_of(H34.org_id, start, start + day, 10) == [
        (SMALL.sender, "SENT"),
        (H23.org_id, "IN"),
    ]
    assert await hub_store.documents_of(H34.org_id, start, start + day, 1) == [
        (SMALL.sender, "SENT")
    ]
    assert await hub_store.documents_of(SMALL.sender, start, start + day, 10) == [
        (SMALL.sender, "SENT"),
        (SMALL.sender, "OTHER"),
    ]
    assert await hub_store.documents_of(H23.org_id, start + day, start + 2 * day, 10) == [
        (H23.org_id, "LATE")
    ]


async def test_a_hop_names_its_delivery_and_so_its_envelope(hub_store: HubStore) -> None:
    await hub_store.accept(replace(SMALL, about="D1", recipients=(H34,)), NOW, SENT)
    (hop,) = await hub_store.trace(SMALL.sender, "D1")
    delivery = await hub_store.delivery(hop.delivery_id)
    assert delivery is not None and (delivery.about, delivery.recipient) == ("D1", H34.org_id)
    assert delivery.body == SMALL.body
