"""A node's store contract (edoc.store.node.NodeStore), run against every backend."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial

import pytest

from edoc import errors
from edoc.model import MessageKind
from edoc.store.node import (
    Agency,
    Count,
    Event,
    InboxAttachment,
    NewAnswer,
    NewInboxItem,
    NewOutgoing,
    NodeStore,
    Progress,
    Tally,
)
from tests.store import oracles

NOW = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)
DAY = NOW.date()
SENDER = "000.00.12.H53"
NEIGHBOUR = "000.00.07.H53"  # served by the same node
FAR = "000.00.00.H34"  # served by another
DOCUMENT = NewOutgoing(
    kind="document",
    sender=SENDER,
    document_id="D1",
    status_code="",
    idempotency_key=None,
    priority=0,
    path="",
    summary={"subject": "Kế hoạch", "due_date": "2026-11-30"},
    recipients=(FAR, NEIGHBOUR),
    local=(NEIGHBOUR,),
    body=b"<edXML/>",
)
RECEIVED = NewInboxItem(
    recipient=SENDER,
    sender=FAR,
    kind="document",
    document_id="R1",
    business_type=0,
    status_code="",
    path="",
    summary={"subject": "Báo cáo"},
    attachments=(
        InboxAttachment(0, "bao-cao.txt", "text/plain", 3, "ab" * 32, "", b"abc"),
        InboxAttachment(1, "lon.pdf", "application/pdf", 9, "cd" * 32, "/data/lon.pdf"),
    ),
    body=b"<received/>",
)


def status(code: str, responder: str = FAR, document_id: str = "D1") -> NewInboxItem:
    """``responder``'s status ``code`` about our document ``document_id``."""
    return replace(
        RECEIVED,
        sender=responder,
        kind="status",
        document_id=document_id,
        status_code=code,
        attachments=(),
        body=code.encode(),
    )


def answer(code: str, to: str = FAR, document_id: str = "R1") -> NewOutgoing:
    """Our status ``code`` about document ``document_id`` we received from ``to``."""
    return replace(
        DOCUMENT,
        kind="status",
        document_id=document_id,
        status_code=code,
        summary={"code": code},
        recipients=(to,),
        local=(),
        body=code.encode(),
    )


def status_codes_win(shown: str, event: str) -> str:
    """A stand-in rule: a delivery outcome does not replace a status code."""
    return shown if shown.isdigit() and not event.isdigit() else event


async def test_a_store_that_answers_pings(node_store: NodeStore) -> None:
    await node_store.ping()


async def test_a_closed_store_does_not_answer(node_store: NodeStore) -> None:
    await node_store.close()
    with pytest.raises(errors.StorageError):
        await node_store.ping()


async def test_agencies_are_found_by_their_latest_token(node_store: NodeStore) -> None:
    await node_store.add_agency(SENDER, "Sở", "a" * 64)
    await node_store.add_agency(NEIGHBOUR, "Huyện", "b" * 64)
    await node_store.add_agency(SENDER, "Sở TT&TT", "c" * 64)
    assert await node_store.agencies() == [Agency(NEIGHBOUR, "Huyện"), Agency(SENDER, "Sở TT&TT")]
    assert await node_store.agency_for_token("a" * 64) is None
    assert await node_store.agency_for_token("c" * 64) == SENDER


async def test_a_new_agency_is_let_in_but_one_let_in_keeps_its_token_and_name(
    node_store: NodeStore,
) -> None:
    """`edoc agency add` replaced a known agency's token (its software locked out) and
    blanked its name when --name was not given."""
    assert await node_store.add_new_agency(SENDER, "Sở TT&TT", "a" * 64)
    assert not await node_store.add_new_agency(SENDER, "Other", "b" * 64)
    assert await node_store.add_new_agency(SENDER, None, "a" * 64)  # its own: no change
    assert await node_store.agencies() == [Agency(SENDER, "Sở TT&TT")]
    assert await node_store.agency_for_token("a" * 64) == SENDER
    assert await node_store.agency_for_token("b" * 64) is None
    assert await node_store.add_new_agency(SENDER, "Sở Thông tin", "a" * 64)  # renamed
    assert await node_store.add_new_agency(NEIGHBOUR, None, "c" * 64)
    assert await node_store.agencies() == [Agency(NEIGHBOUR, ""), Agency(SENDER, "Sở Thông tin")]


async def test_a_replaced_token_keeps_the_name_unless_another_is_given(
    node_store: NodeStore,
) -> None:
    await node_store.add_agency(SENDER, "Sở TT&TT", "a" * 64)
    await node_store.add_agency(SENDER, None, "b" * 64)
    assert await node_store.agencies() == [Agency(SENDER, "Sở TT&TT")]
    assert await node_store.agency_for_token("b" * 64) == SENDER
    await node_store.add_agency(SENDER, "Sở Thông tin", "b" * 64)
    assert await node_store.agencies() == [Agency(SENDER, "Sở Thông tin")]


async def test_another_agencys_token_is_the_error_it_means(node_store: NodeStore) -> None:
    """The UNIQUE on a token came out as sqlite3.IntegrityError or asyncpg's
    UniqueViolationError: a traceback for `edoc agency add --token` of another's."""
    await node_store.add_agency(NEIGHBOUR, "Huyện", "a" * 64)
    with pytest.raises(errors.AgencyExists):
        await node_store.add_new_agency(SENDER, None, "a" * 64)
    with pytest.raises(errors.AgencyExists):
        await node_store.add_agency(SENDER, None, "a" * 64)
    assert await node_store.agencies() == [Agency(NEIGHBOUR, "Huyện")]


async def test_an_outgoing_document_is_queued_on_each_route(node_store: NodeStore) -> None:
    stored = await node_store.add_outgoing(DOCUMENT, NOW, [])
    assert (stored.kind, stored.sender, stored.document_id) == ("document", SENDER, "D1")
    assert stored.summary == DOCUMENT.summary
    assert stored.created_at == NOW
    assert [(r.org_id, r.local, r.state) for r in stored.recipients] == [
        (FAR, False, "queued"),
        (NEIGHBOUR, True, "queued"),
    ]
    assert {(h.state, h.at, h.detail) for r in stored.recipients for h in r.history} == {
        ("queued", NOW, None)
    }
    assert sorted((t.route, t.state, t.attempts) for t in stored.transfers) == [
        ("hub", "pending", 0),
        ("local", "pending", 0),
    ]
    assert await node_store.outgoing(stored.id) == stored
    assert await node_store.outgoing(stored.id + 100) is None
    due = await oracles.due(node_store, NOW, 10, ())
    assert sorted(t.route for t in due) == ["hub", "local"]
    assert {(t.outgoing_id, t.size, t.path, t.kind) for t in due} == {
        (stored.id, len(DOCUMENT.body or b""), "", "document")
    }


async def test_the_outbox_pass_reads_sizes_the_bytes_are_read_when_carried(
    node_store: NodeStore,
) -> None:
    """The pass's transfers hold no package; outgoing_packages gives, in one read, the
    bytes stored, each as long as the pass said (a package in a file is not there)."""
    packages = {
        "D1": b"<edXML/>",
        "D2": bytes(range(256)) * 40,  # compressible: PostgreSQL keeps it compressed
        "D3": random.Random(3).randbytes(300_000),  # as large as documents are, apart (TOAST)
    }
    kept = [
        await node_store.add_outgoing(replace(DOCUMENT, document_id=d, body=b, local=()), NOW, [])
        for d, b in packages.items()
    ]
    in_file = replace(DOCUMENT, document_id="F", path="/data/f.edxml", body=None, local=())
    filed = await node_store.add_outgoing(in_file, NOW, [])
    due = await oracles.due(node_store, NOW, 10, ())
    for transfer in due:
        assert not [v for v in vars(transfer).values() if isinstance(v, bytes)]
    by_id = {t.outgoing_id: t for t in due}
    assert {i: (t.kept, t.size, t.path) for i, t in by_id.items()} == {
        **{o.id: (True, len(packages[o.document_id]), "") for o in kept},
        filed.id: (False, None, "/data/f.edxml"),
    }
    read = await node_store.outgoing_packages([*by_id, filed.id + 100])
    assert read == {o.id: packages[o.document_id] for o in kept}
    assert await node_store.outgoing_packages([]) == {}


async def test_outgoing_messages_are_found_by_key_and_by_document(node_store: NodeStore) -> None:
    keyed = await node_store.add_outgoing(replace(DOCUMENT, idempotency_key="k1"), NOW, [])
    await node_store.add_outgoing(answer("03", document_id="D1"), NOW, [])  # a status: not it
    assert await node_store.outgoing_by_key(SENDER, "k1") == keyed
    assert await node_store.outgoing_by_key(NEIGHBOUR, "k1") is None
    assert await node_store.find_outgoing(SENDER, "D1") == keyed
    assert await node_store.find_outgoing(SENDER, "D2") is None
    with pytest.raises(errors.DuplicateDocument):
        await node_store.add_outgoing(replace(DOCUMENT, idempotency_key="k1"), NOW, [])


async def test_adding_applies_the_tallies_it_is_given(node_store: NodeStore) -> None:
    tallies = [Tally(DAY, SENDER, "", "sent"), Tally(DAY, SENDER, "000.00.00.H34", "sent_to")]
    await node_store.add_outgoing(DOCUMENT, NOW, tallies)
    await node_store.add_outgoing(replace(DOCUMENT, document_id="D2"), NOW, tallies[:1])
    assert sorted(await node_store.counters(), key=lambda c: c.metric) == [
        Count(DAY, SENDER, "", "sent", 2),
        Count(DAY, SENDER, "000.00.00.H34", "sent_to", 1),
    ]


async def _queue(store: NodeStore, rows: list[tuple[str, int]]) -> list[int]:
    """Statuses of SENDER about documents (one per row, with its priority); their ids."""
    ids = []
    for document_id, priority in rows:
        message = replace(answer("05", document_id=document_id), priority=priority)
        ids.append((await store.add_outgoing(message, NOW - dt.timedelta(seconds=9), [])).id)
    return ids


async def test_due_transfers_most_urgent_first_heads_of_chains_only(node_store: NodeStore) -> None:
    ids = await _queue(node_store, [("a", 0), ("b", 2), ("a", 2), ("c", 1), ("d", 1), ("e", 0)])
    transfers = {t.outgoing_id: t.id for t in await oracles.due(node_store, NOW, 10, ())}
    later = NOW + dt.timedelta(seconds=60)
    await node_store.retry_transfer(transfers[ids[3]], later, "hub busy")  # c: not due yet
    due = await oracles.due(node_store, NOW, 10, ())
    # b and d by priority, then a's first status and e by age; a's second waits for its
    # first, c is not due yet
    assert [t.outgoing_id for t in due] == [ids[1], ids[4], ids[0], ids[5]]
    assert [t.outgoing_id for t in await oracles.due(node_store, NOW, 2, ())] == [ids[1], ids[4]]
    under_way = [transfers[ids[1]], transfers[ids[4]]]
    assert [t.outgoing_id for t in await oracles.due(node_store, NOW, 2, under_way)] == [
        ids[0],
        ids[5],
    ]
    assert await oracles.next_at(node_store, NOW) == later
    await node_store.retry_now("hub", NOW)
    assert await oracles.next_at(node_store, NOW) is None
    assert ids[3] in [t.outgoing_id for t in await oracles.due(node_store, NOW, 10, ())]


async def test_due_now_makes_only_the_transfers_named_due(node_store: NodeStore) -> None:
    """What waited for the hub to take the node again goes; what waits for another reason
    keeps its own next try (edoc.node.refusal)."""
    ids = await _queue(node_store, [("a", 0), ("b", 0), ("c", 0)])
    transfers = {t.outgoing_id: t.id for t in await oracles.due(node_store, NOW, 10, ())}
    later = NOW + dt.timedelta(seconds=600)
    for outgoing_id in ids:
        await node_store.retry_transfer(transfers[outgoing_id], later, "refused")
    await node_store.due_now([transfers[ids[0]], transfers[ids[2]]], NOW)
    assert [t.outgoing_id for t in await oracles.due(node_store, NOW, 10, ())] == [
        ids[0],
        ids[2],
    ]
    assert await oracles.next_at(node_store, NOW) == later
    await node_store.due_now([], NOW)  # nothing named: nothing changes


async def test_what_waits_on_the_nodes_credentials_is_known_after_a_restart(
    node_store: NodeStore,
) -> None:
    """The pending transfers whose last try the hub refused for the node's credentials,
    as a node starting asks them (edoc.node.refusal.recall)."""
    ids = await _queue(node_store, [("a", 0), ("b", 0), ("c", 0)])
    transfers = {t.outgoing_id: t for t in await oracles.due(node_store, NOW, 10, ())}
    later = NOW + dt.timedelta(seconds=600)
    for outgoing_id in ids:
        refused = "EDOC-AUTH-001: unknown node token"
        await node_store.retry_transfer(transfers[outgoing_id].id, later, refused, True)
    assert await node_store.waiting_on_credentials() == {t.id for t in transfers.values()}
    await node_store.retry_transfer(transfers[ids[1]].id, later, "hub down")  # another reason
    sent = Event("sent", "hub id 7")
    await node_store.finish_transfer(transfers[ids[2]], "done", "", sent, NOW, status_codes_win)
    assert await node_store.waiting_on_credentials() == {transfers[ids[0]].id}


async def test_a_retried_transfer_keeps_its_error_and_counts_the_attempt(
    node_store: NodeStore,
) -> None:
    stored = await node_store.add_outgoing(replace(DOCUMENT, local=()), NOW, [])
    (transfer,) = await oracles.due(node_store, NOW, 10, ())
    await node_store.retry_transfer(transfer.id, NOW + dt.timedelta(seconds=5), "hub down")
    assert await oracles.due(node_store, NOW, 10, ()) == []
    (again,) = await oracles.due(node_store, NOW + dt.timedelta(seconds=5), 10, ())
    assert again.attempts == 1
    after = await node_store.outgoing(stored.id)
    assert after is not None
    assert [(t.state, t.attempts, t.last_error) for t in after.transfers] == [
        ("pending", 1, "hub down")
    ]


async def test_finishing_a_transfer_moves_its_recipients_by_the_rule(
    node_store: NodeStore,
) -> None:
    stored = await node_store.add_outgoing(DOCUMENT, NOW, [])
    hub, local = sorted(await oracles.due(node_store, NOW, 10, ()), key=lambda t: t.route)
    later = NOW + dt.timedelta(seconds=1)
    await node_store.finish_transfer(
        local, "done", "", Event("delivered", ""), later, status_codes_win
    )
    await node_store.add_received_status(
        status("01", NEIGHBOUR), Event("01", "status 01"), later, status_codes_win
    )
    # the hub's transfer ends after the far recipient answered: "sent" joins its history only
    await node_store.add_received_status(
        status("01"), Event("01", "status 01"), later, status_codes_win
    )
    await node_store.finish_transfer(
        hub, "done", "", Event("sent", "hub id 7"), later, status_codes_win
    )
    after = await node_store.outgoing(stored.id)
    assert after is not None
    assert {r.org_id: r.state for r in after.recipients} == {FAR: "01", NEIGHBOUR: "01"}
    far = next(r for r in after.recipients if r.org_id == FAR)
    assert [(h.state, h.detail) for h in far.history] == [
        ("queued", None),
        ("01", "status 01"),
        ("sent", "hub id 7"),
    ]
    assert sorted((t.route, t.state, t.attempts) for t in after.transfers) == [
        ("hub", "done", 1),
        ("local", "done", 1),
    ]
    assert await oracles.due(node_store, later, 10, ()) == []


async def test_a_failed_transfer_keeps_its_error(node_store: NodeStore) -> None:
    stored = await node_store.add_outgoing(replace(DOCUMENT, local=()), NOW, [])
    (transfer,) = await oracles.due(node_store, NOW, 10, ())
    failed = Event("failed", "EDOC-HUB-001: unknown recipient")
    await node_store.finish_transfer(
        transfer, "failed", failed.detail, failed, NOW, status_codes_win
    )
    after = await node_store.outgoing(stored.id)
    assert after is not None
    assert [(t.state, t.last_error) for t in after.transfers] == [("failed", failed.detail)]
    assert {r.state for r in after.recipients} == {"failed"}


async def test_a_failed_transfer_records_their_own_event_for_the_recipients_given_one(
    node_store: NodeStore,
) -> None:
    """A transfer to the node's own agencies refused when carried again: those that hold
    its package already (stored before a stop) stay delivered, the others fail."""
    other = "000.00.09.H53"  # served by the same node too
    both = replace(DOCUMENT, recipients=(NEIGHBOUR, other), local=(NEIGHBOUR, other))
    stored = await node_store.add_outgoing(both, NOW, [])
    (transfer,) = await oracles.due(node_store, NOW, 10, ())
    failed = Event("failed", "EDOC-SIG-005: the signer's certificate is revoked")
    held = {NEIGHBOUR: Event("delivered", "")}
    await node_store.finish_transfer(
        transfer, "failed", failed.detail, failed, NOW, status_codes_win, held
    )
    after = await node_store.outgoing(stored.id)
    assert after is not None
    assert [(t.state, t.last_error) for t in after.transfers] == [("failed", failed.detail)]
    assert {r.org_id: [(h.state, h.detail) for h in r.history] for r in after.recipients} == {
        NEIGHBOUR: [("queued", None), ("delivered", "")],
        other: [("queued", None), ("failed", failed.detail)],
    }
    assert {r.org_id: r.state for r in after.recipients} == {
        NEIGHBOUR: "delivered",
        other: "failed",
    }


async def test_a_received_document_is_stored_once_with_its_answer(node_store: NodeStore) -> None:
    tallies = [Tally(DAY, SENDER, "000.00.00.H34", "received")]
    first = await node_store.add_received_document(RECEIVED, answer("01"), NOW, tallies)
    again = await node_store.add_received_document(RECEIVED, answer("01"), NOW, tallies)
    assert first.first and not again.first
    assert again.inbox_id == first.inbox_id
    assert await node_store.counters() == [Count(DAY, SENDER, "000.00.00.H34", "received", 1)]
    item = await node_store.inbox_item(first.inbox_id)
    assert item is not None
    assert (item.recipient, item.sender, item.kind, item.document_id) == (
        SENDER,
        FAR,
        "document",
        "R1",
    )
    assert item.summary == RECEIVED.summary and item.received_at == NOW
    assert item.answers == ("01",)
    assert item.attachments == tuple(replace(a, body=None) for a in RECEIVED.attachments)
    assert await node_store.inbox_package(first.inbox_id) == RECEIVED.body
    assert await node_store.inbox_attachment(first.inbox_id, 0) == b"abc"
    assert await node_store.inbox_attachment(first.inbox_id, 1) is None  # a file of its own
    assert await node_store.inbox_attachment(first.inbox_id, 2) is None
    # the answer waits in the outbox, once
    (transfer,) = await oracles.due(node_store, NOW, 10, ())
    assert (transfer.kind, transfer.document_id, transfer.size) == ("status", "R1", 2)
    assert await node_store.outgoing_packages([transfer.outgoing_id]) == {
        transfer.outgoing_id: b"01"
    }


async def test_what_was_received_is_found_by_its_key_alone(node_store: NodeStore) -> None:
    """A package offered again is known by its inbox key before it is verified again: a
    document and a status each under their own key, and nothing under a key that differs
    in any one column (a change of a document keeps its id, with a business type of its
    own; statuses about one document differ by their code)."""
    assert await node_store.received_before(RECEIVED.key) is None
    document = await node_store.add_received_document(RECEIVED, answer("01"), NOW, [])
    received = await node_store.add_received_status(
        status("03"), Event("03", ""), NOW, status_codes_win
    )
    assert await node_store.received_before(RECEIVED.key) == document.inbox_id
    assert await node_store.received_before(status("03").key) == received.inbox_id
    others = [
        replace(RECEIVED, recipient=NEIGHBOUR),
        replace(RECEIVED, sender=SENDER),
        replace(RECEIVED, kind="status"),
        replace(RECEIVED, document_id="R2"),
        replace(RECEIVED, business_type=2),
        status("05"),
    ]
    for other in others:
        assert await node_store.received_before(other.key) is None, other.key


async def test_counter_sums_add_up_by_agency_and_partner_and_by_day(
    node_store: NodeStore,
) -> None:
    later = DAY + dt.timedelta(days=1)
    for tally in (
        Tally(DAY, SENDER, "", "sent", 2),
        Tally(later, SENDER, "", "sent", 3),
        Tally(later, NEIGHBOUR, "", "sent", 4),
        Tally(later, SENDER, "000.00.00.H34", "sent_to", 3),
        Tally(later, NEIGHBOUR, "000.00.00.H34", "received", 1),
        Tally(later + dt.timedelta(days=1), SENDER, "", "sent", 100),  # not asked
    ):
        await node_store.add_outgoing(replace(DOCUMENT, document_id=str(tally)), NOW, [tally])
    sums = await node_store.counter_sums(DAY, later + dt.timedelta(days=1))
    assert sums.by_org == [
        (NEIGHBOUR, "", "sent", 4),
        (NEIGHBOUR, "000.00.00.H34", "received", 1),
        (SENDER, "", "sent", 5),
        (SENDER, "000.00.00.H34", "sent_to", 3),
    ]
    assert sums.by_day == [  # over every agency
        Count(DAY, "", "", "sent", 2),
        Count(later, "", "", "sent", 7),
        Count(later, "", "000.00.00.H34", "received", 1),
        Count(later, "", "000.00.00.H34", "sent_to", 3),
    ]
    assert (await node_store.counter_sums(later, later)).by_day == []  # no day at all


async def test_a_status_with_a_key_is_added_once(node_store: NodeStore) -> None:
    """What keeps a node's 02 for a refused delivery to one however often it is offered
    (edoc.node.collector._refuse)."""
    refusal = replace(answer("02"), idempotency_key="refused\nR1")
    added = await node_store.add_outgoing(refusal, NOW, ())
    with pytest.raises(errors.DuplicateDocument):
        await node_store.add_outgoing(refusal, NOW, ())
    found = await node_store.outgoing_by_key(refusal.sender, "refused\nR1")
    assert found is not None and found.id == added.id


async def test_the_package_files_rows_name_are_listed(node_store: NodeStore) -> None:
    assert await node_store.package_files() == []  # packages in the store name none
    await node_store.add_outgoing(DOCUMENT, NOW, ())
    await node_store.add_received_document(RECEIVED, answer("01"), NOW, ())
    filed = replace(DOCUMENT, document_id="D2", path="/data/outgoing/d2.edxml", body=None)
    await node_store.add_outgoing(filed, NOW, ())
    received = replace(RECEIVED, document_id="R2", path="/data/inbox/r2/package.edxml", body=None)
    await node_store.add_received_document(received, answer("01", document_id="R2"), NOW, ())
    assert sorted(await node_store.package_files()) == [
        "/data/inbox/r2/package.edxml",
        "/data/lon.pdf",  # RECEIVED's attachment in a file of its own (twice: R1 and R2)
        "/data/lon.pdf",
        "/data/outgoing/d2.edxml",
    ]


async def test_the_inbox_lists_documents_since_a_time(node_store: NodeStore) -> None:
    times = [NOW + dt.timedelta(minutes=n) for n in range(3)]
    for n, at in enumerate(times):
        item = replace(RECEIVED, document_id=f"R{n}")
        await node_store.add_received_document(item, answer("01", document_id=f"R{n}"), at, [])
    await node_store.add_received_status(status("03"), Event("03", ""), NOW, status_codes_win)
    listed = await node_store.inbox(SENDER, None, 10)
    assert [i.document_id for i in listed] == ["R0", "R1", "R2"]  # statuses are not listed
    assert [i.document_id for i in await node_store.inbox(SENDER, times[1], 10)] == ["R1", "R2"]
    assert [i.document_id for i in await node_store.inbox(SENDER, None, 1)] == ["R0"]
    assert await node_store.inbox(NEIGHBOUR, None, 10) == []


async def test_a_received_status_moves_our_documents_recipient_once(
    node_store: NodeStore,
) -> None:
    stored = await node_store.add_outgoing(DOCUMENT, NOW, [])
    seen: list[tuple[str, str]] = []

    def rule(shown: str, event: str) -> str:
        seen.append((shown, event))
        return event

    first = await node_store.add_received_status(status("03"), Event("03", "status 03"), NOW, rule)
    again = await node_store.add_received_status(status("03"), Event("03", "status 03"), NOW, rule)
    assert first.first and not again.first and again.inbox_id == first.inbox_id
    assert seen == [("queued", "03")]  # the redelivery changed nothing
    after = await node_store.outgoing(stored.id)
    assert after is not None
    assert {r.org_id: r.state for r in after.recipients} == {FAR: "03", NEIGHBOUR: "queued"}
    # a status about a document we did not send is kept, and moves nothing
    other = await node_store.add_received_status(
        status("03", document_id="D9"), Event("03", ""), NOW, rule
    )
    assert other.first and seen == [("queued", "03")]


async def _receive_change(
    store: NodeStore, business_type: int, document_id: str, names: str
) -> None:
    """A revoke (1), update (2) or replacement (3) from FAR under its own ``document_id``,
    naming in its summary the document it changes (``names``; "": none), received."""
    change = replace(
        RECEIVED,
        document_id=document_id,
        business_type=business_type,
        summary={"business": {"type": business_type, "document_id": names}},
        attachments=(),
    )
    await store.add_received_document(change, answer("01", document_id=document_id), NOW, [])


async def test_a_change_received_is_found_by_the_document_it_changes(
    node_store: NodeStore,
) -> None:
    changed = partial(node_store.received_change, SENDER, FAR)
    await node_store.add_received_document(RECEIVED, answer("01"), NOW, [])
    assert not await changed("R1")  # the document alone: no change of it
    await _receive_change(node_store, 2, "U1", "R1")
    assert await changed("R1")
    assert not await changed("U1")  # the update is not itself changed
    # a change naming no document is about its own DocumentId, as the hub reads it
    await _receive_change(node_store, 1, "R2", "")
    assert await changed("R2")
    assert not await node_store.received_change(NEIGHBOUR, FAR, "R1")  # another recipient's
    assert not await node_store.received_change(SENDER, NEIGHBOUR, "R1")  # another sender's


async def test_an_answer_is_queued_only_if_the_check_passes(node_store: NodeStore) -> None:
    received = await node_store.add_received_document(RECEIVED, answer("01"), NOW, [])
    given: list[Sequence[str]] = []

    def only_forward(codes: Sequence[str]) -> None:
        given.append(list(codes))
        if "06" in codes:
            raise errors.StatusOutOfOrder("nothing follows 06")

    for code in ("03", "06"):
        await node_store.add_answers(
            [NewAnswer(received.inbox_id, answer(code), only_forward)], NOW
        )
    with pytest.raises(errors.StatusOutOfOrder):
        await node_store.add_answers(
            [NewAnswer(received.inbox_id, answer("05"), only_forward)], NOW
        )
    assert given == [["01"], ["01", "03"], ["01", "03", "06"]]
    item = await node_store.inbox_item(received.inbox_id)
    assert item is not None and item.answers == ("01", "03", "06")
    statuses = [t.document_id for t in await oracles.due(node_store, NOW, 10, ())]
    assert len(statuses) == 1  # 01 first; 03 and 06 wait behind it, 05 was never queued


async def test_answers_together_are_queued_in_order_all_or_none(node_store: NodeStore) -> None:
    first = await node_store.add_received_document(RECEIVED, answer("01"), NOW, [])
    second = await node_store.add_received_document(
        replace(RECEIVED, document_id="D2"), answer("01", document_id="D2"), NOW, []
    )
    given: list[tuple[int, list[str]]] = []

    def seen(inbox_id: int, refuse: str = "") -> Callable[[Sequence[str]], None]:
        def check(codes: Sequence[str]) -> None:
            given.append((inbox_id, list(codes)))
            if refuse in codes:
                raise errors.StatusOutOfOrder(f"{refuse} was given")

        return check

    together = [
        NewAnswer(first.inbox_id, answer("03"), seen(first.inbox_id)),
        NewAnswer(second.inbox_id, answer("03", document_id="D2"), seen(second.inbox_id)),
        NewAnswer(first.inbox_id, answer("04"), seen(first.inbox_id)),
    ]
    ids = await node_store.add_answers(together, NOW)
    assert len(set(ids)) == 3 and ids == sorted(ids)  # queued in the order given
    # each judged against what was given before it, those earlier in the call included
    assert given == [
        (first.inbox_id, ["01"]),
        (second.inbox_id, ["01"]),
        (first.inbox_id, ["01", "03"]),
    ]
    refused = [
        NewAnswer(second.inbox_id, answer("04", document_id="D2"), seen(second.inbox_id)),
        NewAnswer(first.inbox_id, answer("05"), seen(first.inbox_id, refuse="04")),
    ]
    kept = await oracles.outgoing_count(node_store)
    with pytest.raises(errors.StatusOutOfOrder):
        await node_store.add_answers(refused, NOW)
    # the one that passed before the refusal was not queued either
    item = await node_store.inbox_item(second.inbox_id)
    assert item is not None and item.answers == ("01", "03")
    assert await oracles.outgoing_count(node_store) == kept


async def test_progress_counts_where_the_recipients_of_documents_stand(
    node_store: NodeStore,
) -> None:
    await node_store.add_outgoing(DOCUMENT, NOW, [])  # due 2026-11-30, two recipients
    await node_store.add_outgoing(replace(DOCUMENT, document_id="D2", summary={}), NOW, [])
    await node_store.add_outgoing(replace(DOCUMENT, document_id="D3"), NOW, [])
    await node_store.add_outgoing(answer("03"), NOW, [])  # a status: not counted
    on_time, late = NOW + dt.timedelta(days=2), NOW + dt.timedelta(days=9)
    await node_store.add_received_status(status("06"), Event("06", ""), on_time, status_codes_win)
    await node_store.add_received_status(
        status("06", document_id="D3"), Event("06", ""), late, status_codes_win
    )
    # 06 again, later: the first time it reached 06 is the one that counts
    await node_store.add_received_status(
        replace(status("06"), business_type=1), Event("06", ""), late, status_codes_win
    )
    # completed, without a due date: nothing to judge it by
    await node_store.add_received_status(
        status("06", document_id="D2"), Event("06", ""), late, status_codes_win
    )
    progress = await node_store.progress()
    assert progress == Progress({"06": 3, "queued": 3}, due=4, on_time=1, completed=2)
    assert progress == await oracles.progress_counted_anew(node_store)


async def test_a_store_with_nothing_sent_counts_no_progress(node_store: NodeStore) -> None:
    assert await node_store.progress() == Progress({}, due=0, on_time=0, completed=0)


@pytest.mark.parametrize("seed", range(4))
async def test_progress_is_what_every_recipient_row_adds_up_to(
    node_store: NodeStore, seed: int
) -> None:
    """Documents sent, transfers finished, failed and reopened, statuses received in
    order and out of it, on time and late, in a random order: the counts the store keeps
    are at every step what its recipient rows add up to."""
    rng = random.Random(seed)
    documents: list[tuple[str, int]] = []  # (DocumentId, outgoing id)
    for step in range(60):
        at = NOW + dt.timedelta(days=rng.choice([0, 3, 6, 9]), seconds=step)
        move = rng.random()
        if move < 0.25 or not documents:
            due = rng.choice([None, "2026-11-27", "2026-11-30"])
            document = replace(
                DOCUMENT,
                document_id=f"D{step}",
                summary={"due_date": due} if due else {},
                recipients=rng.choice([(FAR, NEIGHBOUR), (FAR,)]),
                local=(),
            )
            stored = await node_store.add_outgoing(document, at, [])
            documents.append((document.document_id, stored.id))
        elif move < 0.5:
            due_now = await oracles.due(node_store, at + dt.timedelta(days=30), 10, ())
            if due_now:
                transfer = rng.choice(due_now)
                state, event = rng.choice(
                    [("done", Event("sent", "hub id 1")), ("failed", Event("failed", "EDOC-X"))]
                )
                await node_store.finish_transfer(
                    transfer, state, event.detail, event, at, status_codes_win
                )
        elif move < 0.6:
            _, outgoing_id = rng.choice(documents)
            await node_store.reopen_transfer(outgoing_id, "hub", at, "retried")
        else:
            document_id, _ = rng.choice(documents)
            code = rng.choice(["01", "03", "05", "06", "06"])
            item = replace(status(code, document_id=document_id), business_type=step)
            await node_store.add_received_status(item, Event(code, ""), at, status_codes_win)
        assert await node_store.progress() == await oracles.progress_counted_anew(node_store)
    assert (await node_store.progress()).on_time > 0


async def test_an_added_message_is_what_reads_back(node_store: NodeStore) -> None:
    """add_outgoing gives back what it wrote without reading it (edoc.store.node.as_stored):
    enums given come back as plain str, recipients in order, times as the store keeps them."""
    new = replace(
        DOCUMENT,
        kind=MessageKind.STATUS,
        document_id="D9",
        recipients=("000.00.00.H44", FAR, NEIGHBOUR, "000.00.00.G01"),
        summary={"nested": {"b": [1, 2.5, None], "a": "ế"}, "due_date": None},
    )
    at = NOW.replace(microsecond=123_456)
    stored = await node_store.add_outgoing(new, at, [])
    read = await node_store.outgoing(stored.id)
    assert read == stored
    kept = (stored.kind, stored.recipients[0].state, stored.transfers[0].route)
    assert [type(text) for text in kept] == [str, str, str]  # as read back, not the enums
