"""The hub's store contract (edoc.store.hub.HubStore), run against every backend."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace

import pytest

from edoc import errors
from edoc.hub.retention import EPOCH
from edoc.store.hub import (
    NEW_ELSE_ANY,
    STUCK_AFTER,
    Addressee,
    Backlog,
    Count,
    DirectoryEntry,
    Drop,
    HubStore,
    NewPackage,
    PackageKey,
    Receipt,
    Tally,
)
from tests.store import oracles

NOW = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)
DAY = NOW.date()
LEASE = dt.timedelta(seconds=60)
H34 = Addressee("000.00.00.H34", "H34")
H23 = Addressee("000.00.07.H23", "H23")
SMALL = NewPackage(
    kind="document",
    sender="000.00.12.H53",
    about="small",
    status_code="",
    business_type=0,
    priority=0,
    digest="1",
    path="",
    size=10,
    recipients=(H34,),
    body=b"s" * 10,
)
LARGE = replace(SMALL, about="large", digest="2", size=1000, body=b"L" * 1000)
SENT = Tally(DAY, SMALL.sender, "sent", "")


async def test_a_store_that_answers_pings(hub_store: HubStore) -> None:
    await hub_store.ping()


async def test_a_closed_store_does_not_answer(hub_store: HubStore) -> None:
    await hub_store.close()
    with pytest.raises(errors.StorageError):
        await hub_store.ping()


async def test_an_accepted_package_is_found_by_its_key(hub_store: HubStore) -> None:
    package = replace(SMALL, recipients=(H34, H23))
    record = await hub_store.accept(package, NOW, SENT)
    assert (record.kind, record.sender, record.about, record.digest) == (
        "document",
        SMALL.sender,
        "small",
        "1",
    )
    assert record.recipients == (H34.org_id, H23.org_id)
    assert record.accepted_at == NOW
    assert await hub_store.find_package(package.key) == record
    assert await hub_store.find_package(replace(package, about="other").key) is None


async def test_a_second_package_of_the_same_key_is_a_duplicate(hub_store: HubStore) -> None:
    await hub_store.accept(SMALL, NOW, SENT)
    with pytest.raises(errors.DuplicateDocument):
        await hub_store.accept(replace(SMALL, digest="other"), NOW, SENT)
    assert await oracles.queued_for(hub_store, H34.org_id) == 1  # nothing of the second was kept


async def test_accepting_adds_the_tally_it_is_given(hub_store: HubStore) -> None:
    await hub_store.accept(SMALL, NOW, SENT)
    await hub_store.accept(LARGE, NOW, SENT)
    await hub_store.count(Tally(DAY, "", "rejected", "EDOC-SIG-002"))
    assert sorted(await hub_store.counters(), key=lambda c: c.metric) == [
        Count(DAY, "", "rejected", "EDOC-SIG-002", 1),
        Count(DAY, SMALL.sender, "sent", "", 2),
    ]


async def test_a_lease_hands_out_the_most_urgent_first_and_hides_them(
    hub_store: HubStore,
) -> None:
    for about, priority in (("a", 0), ("b", 2), ("c", 0), ("d", 1)):
        package = replace(SMALL, about=about, digest=about, priority=priority)
        await hub_store.accept(package, NOW, SENT)
    leased = await hub_store.lease("H34", NOW, LEASE, 3, bodies_up_to=0)
    assert [d.about for d in leased] == ["b", "d", "a"]
    assert all(d.attempts == 1 and not d.delivered for d in leased)
    assert [d.about for d in await hub_store.lease("H34", NOW, LEASE, 10, 0)] == ["c"]
    assert await hub_store.lease("H34", NOW, LEASE, 10, 0) == []
    # not acknowledged: back when the lease runs out, tried once more
    again = await hub_store.lease("H34", NOW + LEASE, LEASE, 10, 0)
    assert [(d.about, d.attempts) for d in again] == [("b", 2), ("d", 2), ("a", 2), ("c", 2)]
    assert await hub_store.lease("H23", NOW + LEASE, LEASE, 10, 0) == []


async def test_package_bodies_are_loaded_only_where_they_are_sent(hub_store: HubStore) -> None:
    for package in (SMALL, LARGE):
        await hub_store.accept(package, NOW, SENT)
    # a lease brings the bodies that go inline in the collect answer, not the others
    leased = await hub_store.lease("H34", NOW, LEASE, 10, bodies_up_to=100)
    assert {d.about: d.body for d in leased} == {"small": SMALL.body, "large": None}
    # fetching one brings it whatever its size
    fetched = [await hub_store.delivery(d.id) for d in leased]
    assert {d.about: d.body for d in fetched if d is not None} == {
        "small": SMALL.body,
        "large": LARGE.body,
    }
    assert await hub_store.delivery(10_000) is None


async def test_acknowledging_counts_each_delivery_once(hub_store: HubStore) -> None:
    await hub_store.accept(replace(SMALL, recipients=(H34, H23)), NOW, SENT)
    deliveries = await hub_store.lease("H34", NOW, LEASE, 10, 0)
    deliveries += await hub_store.lease("H23", NOW, LEASE, 10, 0)
    receipts = [Receipt(d.id, Tally(DAY, d.recipient, "received", "")) for d in deliveries]
    assert await oracles.acknowledge(hub_store, receipts, NOW) == sorted(d.id for d in deliveries)
    assert await oracles.acknowledge(hub_store, receipts[:1], NOW) == []  # a repeated one
    assert await oracles.queued_for(hub_store, H34.org_id) == 0
    received = [c for c in await hub_store.counters() if c.metric == "received"]
    assert sorted(received, key=lambda c: c.org_id) == [
        Count(DAY, H34.org_id, "received", "", 1),
        Count(DAY, H23.org_id, "received", "", 1),
    ]
    delivered = [await hub_store.delivery(d.id) for d in deliveries]
    assert all(d is not None and d.delivered for d in delivered)
    assert await hub_store.lease("H34", NOW + LEASE, LEASE, 10, 0) == []


async def test_tallies_of_one_acknowledgement_add_up(hub_store: HubStore) -> None:
    for about in ("a", "b", "c"):
        await hub_store.accept(replace(SMALL, about=about, digest=about), NOW, SENT)
    leased = await hub_store.lease("H34", NOW, LEASE, 10, 0)
    tally = Tally(DAY, H34.org_id, "received", "")
    await oracles.acknowledge(hub_store, [Receipt(d.id, tally) for d in leased], NOW)
    assert Count(DAY, H34.org_id, "received", "", 3) in await hub_store.counters()


async def test_counter_sums_add_up_by_organization_and_by_day_and_province(
    hub_store: HubStore,
) -> None:
    later = DAY + dt.timedelta(days=1)
    h34_office = "000.00.05.H34"  # another organization of H34's province
    for tally in (
        Tally(DAY, H34.org_id, "sent", "", 2),
        Tally(later, H34.org_id, "sent", "", 3),
        Tally(later, h34_office, "sent", "", 7),
        Tally(later, H23.org_id, "sent", "", 5),
        Tally(DAY, H23.org_id, "rejected", "EDOC-SIG-001", 1),
        Tally(later, H23.org_id, "rejected", "EDOC-SIG-001", 1),
        Tally(later, "", "rejected", "EDOC-XML-001", 4),
        Tally(later + dt.timedelta(days=1), H34.org_id, "sent", "", 100),  # not asked
    ):
        await hub_store.count(tally)
    # in order: the report's keys follow it
    sums = await hub_store.counter_sums(DAY, later + dt.timedelta(days=1))
    assert sums.by_org == [
        ("", "rejected", "EDOC-XML-001", 4),
        (H34.org_id, "sent", "", 5),
        (h34_office, "sent", "", 7),
        (H23.org_id, "rejected", "EDOC-SIG-001", 2),
        (H23.org_id, "sent", "", 5),
    ]
    assert sums.by_day == [  # by province; a refusal by the organization it claimed
        Count(DAY, H34.org_id, "sent", "", 2),
        Count(DAY, H23.org_id, "rejected", "EDOC-SIG-001", 1),
        Count(later, "", "rejected", "EDOC-XML-001", 4),
        Count(later, "000.00.00.H23", "sent", "", 5),
        Count(later, H34.org_id, "sent", "", 10),
        Count(later, H23.org_id, "rejected", "EDOC-SIG-001", 1),
    ]
    assert (await hub_store.counter_sums(later, later)).by_org == []  # no day at all


async def test_backlogs_and_queues_count_what_is_not_acknowledged(hub_store: HubStore) -> None:
    await hub_store.accept(replace(SMALL, recipients=(H34, H23)), NOW, SENT)
    await hub_store.accept(replace(LARGE, recipients=(H34,)), NOW, SENT)
    assert sorted(await hub_store.backlogs(), key=lambda b: b.node) == [
        Backlog("H23", 1),
        Backlog("H34", 2),
    ]
    assert await oracles.queued_for(hub_store, H34.org_id) == 2
    (first, _) = await hub_store.lease("H34", NOW, LEASE, 10, 0)
    await oracles.acknowledge(hub_store, [Receipt(first.id, Tally(DAY, "x", "received", ""))], NOW)
    assert await oracles.queued_for(hub_store, H34.org_id) == 1


async def test_backlogs_count_the_deliveries_collected_too_often_unacknowledged(
    hub_store: HubStore,
) -> None:
    """Stuck: leased STUCK_AFTER times or more and still owed; acknowledged, no longer."""
    await hub_store.accept(replace(SMALL, recipients=(H34, H23)), NOW, SENT)
    await hub_store.accept(LARGE, NOW, SENT)
    at = NOW
    for _ in range(STUCK_AFTER - 1):  # both of H34's, each lease after the last ran out
        assert len(await hub_store.lease("H34", at, LEASE, 10, 0)) == 2
        at += LEASE
    assert {b.node: b.stuck for b in await hub_store.backlogs()} == {"H34": 0, "H23": 0}
    (first, _) = await hub_store.lease("H34", at, LEASE, 10, 0)
    assert first.attempts == STUCK_AFTER
    assert sorted(await hub_store.backlogs(), key=lambda b: b.node) == [
        Backlog("H23", 1, stuck=0),
        Backlog("H34", 2, stuck=2),
    ]
    await oracles.acknowledge(hub_store, [Receipt(first.id, Tally(DAY, "x", "received", ""))], NOW)
    assert sorted(await hub_store.backlogs(), key=lambda b: b.node) == [
        Backlog("H23", 1, stuck=0),
        Backlog("H34", 1, stuck=1),
    ]


async def test_codes_given_are_the_statuses_a_responder_sent(hub_store: HubStore) -> None:
    document = await hub_store.accept(SMALL, NOW, SENT)
    back = Addressee(SMALL.sender, "H53")
    for code in ("01", "03"):
        status = replace(
            SMALL,
            kind="status",
            sender=H34.org_id,
            status_code=code,
            digest=code,
            recipients=(back,),
        )
        await hub_store.accept(status, NOW, Tally(DAY, H34.org_id, "status_sent", ""))
    given = await oracles.codes_given(hub_store, H34.org_id, SMALL.sender, document.about)
    assert sorted(given) == ["01", "03"]
    assert await oracles.codes_given(hub_store, H23.org_id, SMALL.sender, document.about) == []


async def test_a_document_asked_new_else_any_is_the_new_one_else_a_change(
    hub_store: HubStore,
) -> None:
    """What a status answers (it names a DocumentId alone): of the sender's documents of
    that DocumentId the new one, whenever accepted; else a change that carries the
    DocumentId as its own. Any other business type finds its own alone."""
    update = replace(SMALL, about="update", business_type=2, digest="u", recipients=(H34, H23))
    await hub_store.accept(update, NOW, SENT)
    await hub_store.accept(replace(SMALL, business_type=1, digest="r"), NOW, SENT)  # reuses
    await hub_store.accept(SMALL, NOW, SENT)

    def asked(about: str) -> PackageKey:
        return replace(SMALL.key, about=about, business_type=NEW_ELSE_ANY)

    for about, business_type in (("update", 2), ("small", 0)):
        found = await hub_store.find_package(asked(about))
        assert found is not None and (found.about, found.business_type) == (about, business_type)
        seen = await hub_store.admission(_status("03", about).key, asked(about), [SMALL.sender])
        assert seen.original == found
    seen = await hub_store.admission(_status("03", "update").key, asked("update"), [])
    assert seen.original is not None and seen.original.recipients == (H34.org_id, H23.org_id)
    assert set(seen.queued) == {H34.org_id, H23.org_id}  # the change's recipients asked about
    assert await hub_store.find_package(asked("none")) is None
    assert await hub_store.find_package(replace(update.key, business_type=0)) is None
    revoke = await hub_store.find_package(replace(SMALL.key, business_type=1))
    assert revoke is not None and revoke.digest == "r"


def _status(code: str, about: str = "small", sender: str = H34.org_id) -> NewPackage:
    back = Addressee(SMALL.sender, "H53")
    return replace(
        SMALL,
        kind="status",
        sender=sender,
        about=about,
        status_code=code,
        digest=code,
        recipients=(back,),
    )


async def test_a_status_waits_while_an_earlier_one_of_its_chain_is_leased(
    hub_store: HubStore,
) -> None:
    """A node that restarts while it holds the lease of a 05 would otherwise be offered
    the 06 first, and store it first: the chain's order is kept at the hub too. The
    holder of the 05 (the same node process, which orders what it holds) is not kept
    waiting."""
    for code in ("04", "05", "06"):
        await hub_store.accept(_status(code), NOW, SENT)
    await hub_store.accept(_status("05", about="other"), NOW, SENT)  # another chain
    await hub_store.accept(_status("06", sender=H23.org_id), NOW, SENT)  # another responder
    first = await hub_store.lease("H53", NOW, LEASE, 1, bodies_up_to=0, holder="a")
    assert [d.status_code for d in first] == ["04"]
    # 04 is leased: 05 and 06 of its chain wait for any other holder, the other chains not
    others = await hub_store.lease("H53", NOW, LEASE, 10, 0, holder="b")
    assert [(d.sender, d.about, d.status_code) for d in others] == [
        (H34.org_id, "other", "05"),
        (H23.org_id, "small", "06"),
    ]
    assert await hub_store.lease("H53", NOW, LEASE, 10, 0) == []  # (None: a holder of its own)
    # the holder of the 04 gets the 05, then the 06
    for code in ("05", "06"):
        (held,) = await hub_store.lease("H53", NOW, LEASE, 1, 0, holder="a")
        assert held.status_code == code
    # the leases run out: the whole chain comes, in its order
    again = await hub_store.lease("H53", NOW + LEASE, LEASE, 10, 0, holder="b")
    chain = [d for d in again if (d.sender, d.about) == (H34.org_id, "small")]
    assert [d.status_code for d in chain] == ["04", "05", "06"]
    # acknowledged, the next one no longer waits
    later = NOW + 2 * LEASE
    (head,) = [d for d in await hub_store.lease("H53", later, LEASE, 1, 0, holder="c")]
    assert head.status_code == "04"
    receipt = Receipt(head.id, Tally(DAY, SMALL.sender, "status_received", ""))
    await oracles.acknowledge(hub_store, [receipt], later)
    rest = await hub_store.lease("H53", later, LEASE, 10, 0, holder="d")
    assert [d.status_code for d in rest if d.about == "small" and d.sender == H34.org_id] == [
        "05",
        "06",
    ]


async def test_two_statuses_judged_on_the_same_codes_are_not_both_kept(
    hub_store: HubStore,
) -> None:
    """A 04 and a 06 posted at once were both judged to follow the 01: the second to be
    kept is refused, so that the intake judges it again on what is kept now."""
    await hub_store.accept(replace(_status("01"), follows=0), NOW, SENT)
    await hub_store.accept(replace(_status("04"), follows=1), NOW, SENT)
    with pytest.raises(errors.ChainMoved):
        await hub_store.accept(replace(_status("06"), follows=1), NOW, SENT)
    given = await oracles.codes_given(hub_store, H34.org_id, SMALL.sender, "small")
    assert sorted(given) == ["01", "04"]  # nothing of the 06 was kept
    # other chains, and documents, have places of their own
    await hub_store.accept(replace(_status("01", about="other"), follows=0), NOW, SENT)
    await hub_store.accept(replace(_status("01", sender=H23.org_id), follows=0), NOW, SENT)
    await hub_store.accept(replace(_status("06"), follows=2), NOW, SENT)


async def test_a_chain_is_the_responders_answers_to_one_document_sender(
    hub_store: HubStore,
) -> None:
    """Two senders may name their documents alike (nothing makes a DocumentId begin with
    its sender's id): a responder's answers to each are chains of their own."""
    await hub_store.accept(replace(_status("01"), follows=0), NOW, SENT)
    to_h41 = replace(_status("02"), recipients=(Addressee("000.00.00.H41", "H41"),), follows=0)
    await hub_store.accept(to_h41, NOW, SENT)


ENTRIES = [
    DirectoryEntry("000.00.12.H53", "Sở TT&TT", "agency", "H53"),
    DirectoryEntry("000.00.00.H34", "Thái Bình", "province", "H34"),
]


async def test_the_directory_version_grows_only_when_an_entry_changes(
    hub_store: HubStore,
) -> None:
    empty = await hub_store.directory()
    assert (empty.version, empty.entries, await hub_store.directory_version()) == (0, (), 0)
    assert await hub_store.register(ENTRIES) == 1
    assert await hub_store.register(ENTRIES) == 1  # the same again: no change
    renamed = replace(ENTRIES[0], name="Sở Thông tin và Truyền thông")
    assert await hub_store.register([renamed]) == 2
    book = await hub_store.directory()
    assert book.version == await hub_store.directory_version() == 2
    assert book.entries == (ENTRIES[1], renamed)  # by org_id


async def test_a_nodes_registration_replaces_its_agencies(hub_store: HubStore) -> None:
    """What a node registers is all it serves: its agencies it no longer names leave the
    book (so a node cannot grow the book for ever), its province's own entry stays, and
    no other node's entry is touched."""
    province = DirectoryEntry("000.00.00.H53", "Tây Ninh", "province", "H53")
    a, b = (DirectoryEntry(f"000.00.{n}.H53", n, "agency", "H53") for n in ("07", "12"))
    other = DirectoryEntry("000.00.07.H34", "Sở Nội vụ", "agency", "H34")
    await hub_store.register([province, other])
    version = await hub_store.register([a, b], replacing="H53")
    assert await hub_store.register([a, b], replacing="H53") == version  # no change
    assert await hub_store.register([b], replacing="H53") == version + 1
    book = await hub_store.directory()
    assert book.entries == (province, other, b)  # by org_id
    assert await hub_store.register([], replacing="H53") == version + 2
    assert (await hub_store.directory()).entries == (province, other)


async def test_unknown_lists_who_is_not_in_the_directory(hub_store: HubStore) -> None:
    await hub_store.register(ENTRIES)
    asked = ["000.00.99.H53", "000.00.12.H53", "000.00.00.H01"]
    assert await oracles.unknown(hub_store, asked) == ["000.00.99.H53", "000.00.00.H01"]


async def test_a_node_is_found_by_its_latest_token(hub_store: HubStore) -> None:
    await hub_store.add_node("H53", "a" * 64)
    assert await hub_store.node_for_token("a" * 64) == "H53"
    await hub_store.add_node("H53", "b" * 64)  # a new token replaces the old one
    assert await hub_store.node_for_token("a" * 64) is None
    assert await hub_store.node_for_token("b" * 64) == "H53"


async def test_a_new_node_is_let_in_but_a_connected_one_keeps_its_token(
    hub_store: HubStore,
) -> None:
    assert await hub_store.add_new_node("H53", "a" * 64)
    assert await hub_store.add_new_node("H53", "a" * 64)  # its own token again: no change
    assert not await hub_store.add_new_node("H53", "b" * 64)
    assert await hub_store.node_for_token("a" * 64) == "H53"
    assert await hub_store.node_for_token("b" * 64) is None


async def test_retention_drops_the_bytes_of_old_delivered_packages_only(
    hub_store: HubStore,
) -> None:
    old = NOW - dt.timedelta(days=10)
    delivered = replace(SMALL, about="delivered", digest="d")
    as_file = replace(SMALL, about="file", digest="f", path="/packages/f.edxml", body=None)
    waiting = replace(SMALL, about="waiting", digest="w")
    for package in (delivered, as_file, waiting):
        await hub_store.accept(package, old, SENT)
    await hub_store.accept(replace(SMALL, about="recent", digest="r"), NOW, SENT)
    leased = await hub_store.lease("H34", NOW, LEASE, 10, 0)
    acknowledged = [d for d in leased if d.about != "waiting"]
    receipts = [Receipt(d.id, Tally(DAY, d.recipient, "received", "")) for d in acknowledged]
    await oracles.acknowledge(hub_store, receipts, NOW)

    before = NOW - dt.timedelta(days=1)
    dropped = await hub_store.drop_delivered_bytes(EPOCH, before, 10)
    assert dropped == Drop(2, ("/packages/f.edxml",), None)
    assert await hub_store.drop_delivered_bytes(EPOCH, before, 10) == Drop(0, (), None)  # once

    kept = {d.about: await hub_store.delivery(d.id) for d in leased}
    assert kept["delivered"] is not None and (kept["delivered"].body, kept["delivered"].path) == (
        None,
        "",
    )
    assert kept["waiting"] is not None and kept["waiting"].body == waiting.body
    assert kept["recent"] is not None and kept["recent"].body == SMALL.body
    # the row stays: a resend of it is still found, with its first answer
    found = await hub_store.find_package(delivered.key)
    assert found is not None and found.digest == "d"


async def _acknowledged(hub_store: HubStore, ages: Sequence[int], owed: int = 0) -> None:
    """Package n accepted ages[n] days before NOW, kept in the file /p/n; every one
    acknowledged but the ``owed`` oldest."""
    for n, age in enumerate(ages):
        package = replace(SMALL, about=f"a{n}", digest=str(n), path=f"/p/{n}", body=None)
        await hub_store.accept(package, NOW - dt.timedelta(days=age), SENT)
    leased = await hub_store.lease("H34", NOW, LEASE, len(ages), 0)
    oldest_first = sorted(leased, key=lambda d: -ages[int(d.about[1:])])
    receipts = [Receipt(d.id, Tally(DAY, d.recipient, "received", "")) for d in oldest_first]
    await oracles.acknowledge(hub_store, receipts[owed:], NOW)


def _step(drop: Drop) -> tuple[int, list[str], dt.datetime | None]:
    """What a step dropped, its files by name, and how far it looked."""
    return drop.dropped, sorted(drop.files), drop.reached


async def test_retention_looks_at_the_limit_oldest_first(hub_store: HubStore) -> None:
    await _acknowledged(hub_store, (3, 5, 4))
    first = await hub_store.drop_delivered_bytes(EPOCH, NOW, 2)
    assert _step(first) == (2, ["/p/1", "/p/2"], NOW - dt.timedelta(days=4))
    assert first.reached is not None
    last = await hub_store.drop_delivered_bytes(first.reached, NOW, 2)
    assert _step(last) == (1, ["/p/0"], None)


async def test_a_retention_step_passes_over_what_is_owed_and_says_how_far_it_looked(
    hub_store: HubStore,
) -> None:
    """A step looks at its limit of packages, owed ones too, and the next one after them.
    (Stopped at its limit of packages dropped instead, a step walked every owed package
    on its way, however many, in one write transaction.)"""
    await _acknowledged(hub_store, (9, 8, 7, 6, 5, 4), owed=3)
    reached: dt.datetime | None = EPOCH
    steps = []
    while reached is not None:
        step = _step(await hub_store.drop_delivered_bytes(reached, NOW, 2))
        steps.append(step)
        reached = step[2]
    assert steps == [
        (0, [], NOW - dt.timedelta(days=8)),
        (1, ["/p/3"], NOW - dt.timedelta(days=6)),
        (2, ["/p/4", "/p/5"], NOW - dt.timedelta(days=4)),
        (0, [], None),
    ]


async def test_a_retention_step_looks_at_every_package_of_its_last_moment(
    hub_store: HubStore,
) -> None:
    """The next step looks after the moment the last was accepted: the others accepted
    then are this step's, or they would be missed."""
    await _acknowledged(hub_store, (3, 2, 2, 2, 1))
    first = await hub_store.drop_delivered_bytes(EPOCH, NOW, 2)
    assert _step(first) == (4, ["/p/0", "/p/1", "/p/2", "/p/3"], NOW - dt.timedelta(days=2))
    assert first.reached is not None
    last = await hub_store.drop_delivered_bytes(first.reached, NOW, 2)
    assert _step(last) == (1, ["/p/4"], None)


async def test_retention_lists_the_files_it_dropped_until_they_are_said_removed(
    hub_store: HubStore,
) -> None:
    """The list is a step's intent: a hub killed before the files were removed finds them
    there at its next pass."""
    for name in ("c", "a", "b", "in-row"):
        path = "" if name == "in-row" else f"/p/{name}"
        package = replace(SMALL, about=name, digest=name, path=path, body=None if path else b"s")
        await hub_store.accept(package, NOW - dt.timedelta(days=3), SENT)
    leased = await hub_store.lease("H34", NOW, LEASE, 10, 0)
    receipts = [Receipt(d.id, Tally(DAY, d.recipient, "received", "")) for d in leased]
    await oracles.acknowledge(hub_store, receipts, NOW)
    assert await hub_store.dropped_files("", 10) == []

    await hub_store.drop_delivered_bytes(EPOCH, NOW, 10)
    assert await hub_store.dropped_files("", 10) == ["/p/a", "/p/b", "/p/c"]
    assert await hub_store.dropped_files("", 2) == ["/p/a", "/p/b"]  # by name, paged
    assert await hub_store.dropped_files("/p/b", 2) == ["/p/c"]
    await hub_store.files_removed(["/p/a", "/p/c"])
    assert await hub_store.dropped_files("", 10) == ["/p/b"]


async def test_another_nodes_token_is_refused_as_such_not_as_the_stores_constraint(
    hub_store: HubStore,
) -> None:
    """The UNIQUE on a token came out as sqlite3.IntegrityError or asyncpg's
    UniqueViolationError: a traceback for an operator whose add-node raced another."""
    await hub_store.add_node("H34", "a" * 64)
    with pytest.raises(errors.NodeExists):
        await hub_store.add_new_node("H53", "a" * 64)
    with pytest.raises(errors.NodeExists):
        await hub_store.add_node("H53", "a" * 64)
    assert await hub_store.node_for_token("a" * 64) == "H34"
