"""What the PostgreSQL stores add to the contract: a schema they create and upgrade
themselves, and several instances (or connections) sharing one database."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

import asyncpg
import pytest

from edoc import errors
from edoc.store import open_hub_store, open_node_store
from edoc.store.hub import (
    STUCK_AFTER,
    Addressee,
    Backlog,
    Count,
    DirectoryEntry,
    HubStore,
    NewPackage,
    Receipt,
    Tally,
)
from edoc.store.node import Event, NewAnswer, NodeStore
from edoc.store.postgres import database, node_views
from edoc.store.postgres.database import PROGRESS_LOCK, PostgresDatabase
from edoc.store.postgres.hub import PostgresHubStore
from edoc.store.postgres.node import PostgresNodeStore
from tests.store import oracles, postgres
from tests.store.test_node import DOCUMENT, RECEIVED, answer, status, status_codes_win

NOW = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)
LEASE = dt.timedelta(seconds=60)
H34 = Addressee("000.00.00.H34", "H34")
PACKAGE = NewPackage(
    kind="document",
    sender="000.00.12.H53",
    about="d",
    status_code="",
    business_type=0,
    priority=0,
    digest="1",
    path="",
    size=3,
    recipients=(H34,),
    body=b"abc",
)
SENT = Tally(NOW.date(), PACKAGE.sender, "sent", "")


async def _versions(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT component, version FROM schema_version")
    finally:
        await conn.close()
    return {row[0]: row[1] for row in rows}


async def test_an_empty_database_gets_the_latest_schema(fresh: str) -> None:
    store = await open_hub_store(fresh)
    await store.accept(PACKAGE, NOW, SENT)
    await store.close()
    assert await _versions(fresh) == {"hub": len(PostgresHubStore.migrations)}
    again = await open_hub_store(fresh)  # opening again changes nothing
    try:
        assert await oracles.queued_for(again, H34.org_id) == 1
    finally:
        await again.close()


async def test_instances_starting_at_once_make_the_schema_once(fresh: str) -> None:
    stores = await asyncio.gather(*(open_hub_store(fresh) for _ in range(4)))
    for store in stores:
        await store.close()
    assert await _versions(fresh) == {"hub": len(PostgresHubStore.migrations)}


class _SlowToUpgrade(PostgresDatabase):
    """A store whose migration takes longer than a request's statement may."""

    component = "slow"
    migrations = ("CREATE TABLE slow (n INTEGER); SELECT pg_sleep(1.5)",)


async def test_a_migration_longer_than_a_statement_may_take_is_made_once(
    fresh: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index built over a large table takes minutes: neither the instance building it
    nor another starting meanwhile (waiting for it) gives up at the bound of a request's
    statement, which cut the migration (rolled back) at every try."""
    monkeypatch.setattr(database, "COMMAND_TIMEOUT", 0.5)
    monkeypatch.setattr(_SlowToUpgrade, "start_patience", 4.0)
    stores = [_SlowToUpgrade(fresh) for _ in range(2)]
    try:
        await asyncio.gather(*(store.open() for store in stores))
    finally:
        for store in stores:
            await store.close()
    assert await _versions(fresh) == {"slow": 1}


async def test_a_database_a_newer_edoc_made_is_refused(fresh: str) -> None:
    await (await open_hub_store(fresh)).close()
    conn = await asyncpg.connect(fresh)
    await conn.execute("UPDATE schema_version SET version = version + 1")
    await conn.close()
    with pytest.raises(errors.StorageError, match="made by a newer edoc"):
        await open_hub_store(fresh)


async def test_a_server_that_does_not_answer_is_a_storage_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(PostgresDatabase, "start_patience", 1.5)
    began = time.monotonic()
    with pytest.raises(errors.StorageError) as failed:
        await open_hub_store("postgresql://edoc:s3cret@127.0.0.1:9/edoc")
    assert 1.0 <= time.monotonic() - began < 5  # waited for it, then gave up
    assert failed.value.code == "EDOC-STORE-001"
    assert "s3cret" not in str(failed.value) and "edoc:***@127.0.0.1:9" in str(failed.value)


async def test_a_database_that_does_not_exist_is_refused_at_once(fresh: str) -> None:
    began = time.monotonic()
    with pytest.raises(errors.StorageError, match="does not exist"):
        await open_hub_store(fresh + "_missing")
    assert time.monotonic() - began < PostgresDatabase.start_patience / 2


async def test_a_store_opened_while_its_database_is_away_waits_for_it(fresh: str) -> None:
    """As an instance started during a server restart: it comes up after it."""
    database = fresh.rpartition("/")[2]
    admin = await asyncpg.connect(postgres.SERVER)
    try:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        opening = asyncio.create_task(open_hub_store(fresh))
        await asyncio.sleep(1.5)
        assert not opening.done()
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        store = await opening
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        await admin.close()
    await store.ping()
    await store.close()


@pytest.fixture
async def two_instances(fresh: str) -> AsyncIterator[list[HubStore]]:
    """Two hub instances' stores on one database."""
    stores = [await open_hub_store(fresh) for _ in range(2)]
    yield stores
    for store in stores:
        await store.close()


async def _accept_many(store: HubStore, count: int) -> None:
    for n in range(count):
        await store.accept(replace(PACKAGE, about=f"d{n}", priority=n % 3), NOW, SENT)


async def test_instances_leasing_at_once_never_share_a_delivery(
    two_instances: list[HubStore],
) -> None:
    await _accept_many(two_instances[0], 120)
    # twelve collectors, six on each instance, claim batches of 10 at the same moment
    batches = await asyncio.gather(
        *(store.lease("H34", NOW, LEASE, 10, 0) for store in two_instances for _ in range(6))
    )
    ids = [d.id for batch in batches for d in batch]
    assert len(ids) == len(set(ids)) == 120
    for batch in batches:  # each batch is in the queue's order
        assert [d.priority for d in batch] == sorted((d.priority for d in batch), reverse=True)


async def test_a_lease_held_by_an_instance_that_died_comes_back_once(
    two_instances: list[HubStore],
) -> None:
    first, second = two_instances
    await _accept_many(first, 3)
    held = await first.lease("H34", NOW, LEASE, 10, 0)
    await first.close()  # the instance is gone with its lease, before acknowledging
    assert await second.lease("H34", NOW, LEASE, 10, 0) == []  # hidden until it runs out
    back = await second.lease("H34", NOW + LEASE, LEASE, 10, 0)
    assert sorted(d.id for d in back) == sorted(d.id for d in held)
    tally = Tally(NOW.date(), H34.org_id, "received", "")
    acknowledged = await oracles.acknowledge(second, [Receipt(d.id, tally) for d in back], NOW)
    assert len(acknowledged) == 3
    later = NOW + 10 * LEASE
    assert await second.lease("H34", later, LEASE, 10, 0) == []  # never again after the ack
    assert await oracles.acknowledge(second, [Receipt(d.id, tally) for d in back], later) == []


def _chain(about: str, code: str, follows: int) -> NewPackage:
    """A status of H34's about document ``about`` of H53's agency, back to H53."""
    return replace(
        PACKAGE,
        kind="status",
        sender=H34.org_id,
        about=about,
        status_code=code,
        digest=code,
        recipients=(Addressee(PACKAGE.sender, "H53"),),
        follows=follows,
    )


async def test_two_holders_leasing_at_once_never_split_a_chain(
    two_instances: list[HubStore],
) -> None:
    """A held collect of a node process that died, and the new process's collect, both
    woken by one delivery: the 06 must not go to one while the other takes the 05."""
    for round_ in range(5):
        chains = [f"r{round_}c{n}" for n in range(40)]
        for about in chains:
            for follows, code in enumerate(("05", "06")):
                await two_instances[0].accept(_chain(about, code, follows), NOW, SENT)
        now = NOW + round_ * 2 * LEASE  # each round's leases run out before the next
        leases = await asyncio.gather(
            *(
                store.lease("H53", now, LEASE, 100, 0, holder=holder)
                for store, holder in zip(two_instances, ("old", "new"), strict=True)
            )
        )
        holders = {
            (d.about, d.status_code): holder
            for holder, leased in zip(("old", "new"), leases, strict=True)
            for d in leased
        }
        # a 06 leased goes to the holder of its 05
        split = [
            about
            for about in chains
            if holders.get((about, "06")) not in (None, holders.get((about, "05")))
        ]
        assert split == [], f"round {round_}: chains split between the holders"


# a package and its delivery as the first version's columns hold them (this code's own
# accept writes the columns added since)
_OLD_PACKAGE = """
WITH package AS (
    INSERT INTO packages (kind, sender, about, status_code, business_type, priority, digest,
        path, size, accepted_at, body)
    VALUES ('document', $1, 'd', '', 0, 0, '1', '', 3, $2, 'abc') RETURNING id
)
INSERT INTO deliveries (package_id, recipient, node, priority) SELECT id, $3, $4, 0 FROM package
"""


async def test_a_database_of_the_previous_version_is_upgraded(fresh: str) -> None:
    previous = PostgresHubStore(fresh)
    await previous.open(up_to=len(PostgresHubStore.migrations) - 1)
    await previous.close()
    conn = await asyncpg.connect(fresh)
    try:
        await conn.execute(_OLD_PACKAGE, PACKAGE.sender, NOW, H34.org_id, H34.node)
    finally:
        await conn.close()
    assert await _versions(fresh) == {"hub": len(PostgresHubStore.migrations) - 1}

    store = await open_hub_store(fresh)
    heard: asyncio.Queue[str] = asyncio.Queue()
    try:
        assert await _versions(fresh) == {"hub": len(PostgresHubStore.migrations)}
        (kept,) = await store.lease("H34", NOW, LEASE, 10, bodies_up_to=10)
        assert (kept.about, kept.body) == ("d", b"abc")
        await store.watch(heard.put_nowait)  # what version 2 added: notifications
        await store.accept(replace(PACKAGE, about="e"), NOW, SENT)
        async with asyncio.timeout(5):
            assert await heard.get() == "H34"
    finally:
        await store.close()


async def test_deliveries_stuck_before_the_upgrade_are_counted_after_it(fresh: str) -> None:
    """Version 8 keeps the stuck deliveries apart (a column the lease sets, and its
    index): those a store of version 7 had leased STUCK_AFTER times are marked when it
    is upgraded, and its lease marks the next."""
    previous = PostgresHubStore(fresh)
    await previous.open(up_to=7)
    await previous.close()
    conn = await asyncpg.connect(fresh)
    try:
        await conn.execute(_OLD_PACKAGE, PACKAGE.sender, NOW, H34.org_id, H34.node)
        await conn.execute("UPDATE deliveries SET attempts = $1", STUCK_AFTER)
    finally:
        await conn.close()
    store = await open_hub_store(fresh)
    try:
        assert await store.backlogs() == [Backlog("H34", 1, stuck=1)]
        await store.accept(replace(PACKAGE, about="e"), NOW, SENT)
        at = NOW
        for _ in range(STUCK_AFTER):
            await store.lease("H34", at, LEASE, 10, 0)
            at += LEASE
        assert await store.backlogs() == [Backlog("H34", 2, stuck=2)]
    finally:
        await store.close()


async def _heard(queue: asyncio.Queue[str]) -> str:
    async with asyncio.timeout(5):
        return await queue.get()


async def test_an_instance_hears_of_deliveries_another_one_added(
    two_instances: list[HubStore],
) -> None:
    accepting, polling = two_instances
    heard: asyncio.Queue[str] = asyncio.Queue()
    await polling.watch(heard.put_nowait)
    h23 = Addressee("000.00.07.H23", "H23")
    await accepting.accept(replace(PACKAGE, recipients=(H34, h23)), NOW, SENT)
    assert {await _heard(heard), await _heard(heard)} == {"H34", "H23"}
    assert heard.empty()


async def test_an_instance_hears_when_another_ones_acknowledgement_frees_a_status(
    two_instances: list[HubStore],
) -> None:
    """The next status of a chain waits for the one before to be acknowledged
    (HubStore.lease): a node's held collect on one instance must hear of an
    acknowledgement the other instance took, not find it at its next look (seconds)."""
    acknowledging, polling = two_instances
    await acknowledging.accept(PACKAGE, NOW, SENT)
    for follows, code in enumerate(("03", "04")):
        await acknowledging.accept(_chain("d", code, follows), NOW, SENT)
    document = await acknowledging.lease("H34", NOW, LEASE, 10, 0)
    first = await acknowledging.lease("H53", NOW, LEASE, 1, 0, holder="old")
    assert await polling.lease("H53", NOW, LEASE, 10, 0, holder="new") == []  # 04 waits
    heard: asyncio.Queue[str] = asyncio.Queue()
    await polling.watch(heard.put_nowait)
    tally = Tally(NOW.date(), H34.org_id, "received", "")
    for leased in (document, first):
        await oracles.acknowledge(acknowledging, [Receipt(d.id, tally) for d in leased], NOW)
    assert await _heard(heard) == "H53"  # (a document's acknowledgement frees nothing)
    assert [d.status_code for d in await polling.lease("H53", NOW, LEASE, 10, 0)] == ["04"]
    assert heard.empty()


async def test_after_a_lost_connection_every_waiter_is_woken_and_news_flows_again(
    fresh: str, two_instances: list[HubStore]
) -> None:
    accepting, polling = two_instances
    heard: asyncio.Queue[str] = asyncio.Queue()
    await polling.watch(heard.put_nowait)
    conn = await asyncpg.connect(fresh)  # as a restarted server would: every session ends
    await conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    await conn.close()
    assert await _heard(heard) == ""  # what was sent meanwhile is unknown: everyone looks
    await accepting.accept(PACKAGE, NOW, SENT)  # the pool replaced its connections too
    assert await _heard(heard) == "H34"


async def test_an_empty_database_gets_the_node_schema(fresh: str) -> None:
    store = await open_node_store(fresh)
    await store.close()
    assert await _versions(fresh) == {"node": len(PostgresNodeStore.migrations)}


async def test_a_node_database_of_version_3_walks_its_troubled_transfers_by_index(
    fresh: str,
) -> None:
    previous = PostgresNodeStore(fresh)
    await previous.open(up_to=3)
    await previous.close()
    await (await open_node_store(fresh)).close()
    conn = await asyncpg.connect(fresh)
    try:
        # an empty table, no statistics: whether the index can serve the order at all
        await conn.execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
        plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {node_views.TROUBLED}", 20))
        names = {r[0] for r in await conn.fetch("SELECT indexname FROM pg_indexes")}
    finally:
        await conn.close()
    assert "Scan Backward using transfers_troubled" in plan, plan
    assert "Sort" not in plan, plan
    assert "transfers_failed" not in names  # what it served, the new one serves


async def _documents_answered(store: NodeStore, names: Sequence[str]) -> None:
    """A document per name, sent and answered 06 on time by its far recipient."""
    for name in names:
        await store.add_outgoing(replace(DOCUMENT, document_id=name), NOW, [])
        await store.add_received_status(
            status("06", document_id=name), Event("06", ""), NOW, status_codes_win
        )


async def test_a_node_database_of_the_first_version_has_its_progress_counted(
    fresh: str,
) -> None:
    previous = PostgresNodeStore(fresh)
    await previous.open(up_to=1)  # before version 2 kept the counts
    await _documents_answered(previous, ["D1", "D2"])
    await previous.close()

    store = await open_node_store(fresh)
    try:
        assert await _versions(fresh) == {"node": len(PostgresNodeStore.migrations)}
        progress = await store.progress()
        assert progress == await oracles.progress_counted_anew(store)
        assert (progress.states, progress.due, progress.on_time) == (
            {"06": 2, "queued": 2},
            4,
            2,
        )
        await _documents_answered(store, ["D3"])  # and counted as rows change from then on
        assert (await store.progress()).states == {"06": 3, "queued": 3}
    finally:
        await store.close()


async def test_a_node_database_of_version_5_has_its_completed_recipients_counted(
    fresh: str,
) -> None:
    """The on-time share judges the recipients that completed (edoc.node.stats): those of
    a database made before they were counted are counted once, and then as rows change."""
    previous = PostgresNodeStore(fresh)
    await previous.open(up_to=5)
    await _documents_answered(previous, ["D1", "D2"])
    # completed late (judged, not on time), and without a due date (not judged)
    late = NOW + dt.timedelta(days=30)
    for name, summary in (("L1", DOCUMENT.summary), ("N1", {})):
        await previous.add_outgoing(replace(DOCUMENT, document_id=name, summary=summary), NOW, [])
        answered = status("06", document_id=name)
        await previous.add_received_status(answered, Event("06", ""), late, status_codes_win)
    await previous.close()

    store = await open_node_store(fresh)
    try:
        assert await _versions(fresh) == {"node": len(PostgresNodeStore.migrations)}
        progress = await store.progress()
        assert progress == await oracles.progress_counted_anew(store)
        assert (progress.due, progress.on_time, progress.completed) == (6, 2, 3)
        await _documents_answered(store, ["D3"])
        assert (await store.progress()).completed == 4
    finally:
        await store.close()


async def test_progress_read_while_another_reader_folds_adds_up_the_same(fresh: str) -> None:
    store = await open_node_store(fresh)
    folding = await asyncpg.connect(fresh)
    try:
        await _documents_answered(store, ["D1"])
        await store.progress()  # folded
        await _documents_answered(store, ["D2"])
        async with folding.transaction():
            await folding.execute("SELECT pg_advisory_xact_lock($1)", PROGRESS_LOCK)
            progress = await store.progress()  # counts and changes not folded
            assert await folding.fetchval("SELECT COUNT(*) FROM progress_changes") > 0
        assert progress == await oracles.progress_counted_anew(store)
        assert progress.states == {"06": 2, "queued": 2}
    finally:
        await folding.close()
        await store.close()


async def test_recipients_moved_by_many_transactions_at_once_are_all_counted(
    fresh: str,
) -> None:
    """Writers only add change rows: transactions at the same time never wait on a count
    row, nor deadlock over two (statement_timeout would fail one that waited long)."""
    stores = [await open_node_store(fresh) for _ in range(3)]
    try:
        names = [f"D{n}" for n in range(60)]
        await asyncio.gather(
            *(_documents_answered(store, names[n::3]) for n, store in enumerate(stores)),
            *(store.progress() for store in stores),
        )
        progress = await stores[0].progress()
        assert progress == await oracles.progress_counted_anew(stores[0])
        assert progress.states == {"06": 60, "queued": 60}
    finally:
        for store in stores:
            await store.close()


async def test_two_answers_at_once_are_judged_one_after_the_other(fresh: str) -> None:
    stores = [await open_node_store(fresh) for _ in range(2)]
    try:
        received = await stores[0].add_received_document(RECEIVED, answer("01"), NOW, [])

        def one_more_only(codes: Sequence[str]) -> None:
            if len(codes) > 1:
                raise errors.StatusOutOfOrder(f"{codes[-1]} was given already")

        posts = [
            store.add_answers([NewAnswer(received.inbox_id, answer(code), one_more_only)], NOW)
            for store, code in zip(stores * 2, ("03", "05", "06", "02"), strict=True)
        ]
        outcomes = await asyncio.gather(*posts, return_exceptions=True)
        assert sum(isinstance(o, list) for o in outcomes) == 1, outcomes
        assert sum(isinstance(o, errors.StatusOutOfOrder) for o in outcomes) == 3
        item = await stores[1].inbox_item(received.inbox_id)
        assert item is not None and len(item.answers) == 2
    finally:
        for store in stores:
            await store.close()


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_without_a_server_the_postgresql_tests_fail_in_ci_and_skip_elsewhere(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setattr(postgres, "SERVER", "postgresql://root@127.0.0.1:9/test")
    monkeypatch.setenv("CI", ci)
    with pytest.raises(
        outcome, match=r"no PostgreSQL answers at postgresql://root@127\.0\.0\.1:9/"
    ):
        postgres.require_server()


async def test_registrations_at_once_in_any_order_never_deadlock(
    two_instances: list[HubStore],
) -> None:
    entries = [
        DirectoryEntry(f"000.{n // 100:02}.{n % 100:02}.H53", f"Sở {n}", "agency", "H53")
        for n in range(1000)
    ]
    for round_ in range(10):
        renamed = [replace(e, name=f"{e.name} ({round_})") for e in entries]
        # the same organizations in opposite orders, from two instances at once
        await asyncio.gather(
            two_instances[0].register(renamed), two_instances[1].register(renamed[::-1])
        )
    book = await two_instances[0].directory()
    assert len(book.entries) == 1000 and book.version >= 10


async def test_one_nodes_registrations_at_once_replace_without_a_deadlock(
    two_instances: list[HubStore],
) -> None:
    """A node's registration removes the agencies it no longer names, then adds the
    others: two of them at once (its retry, two of its instances) locked rows in two
    orders and deadlocked."""
    entries = [DirectoryEntry(f"000.00.{n:02}.H53", f"{n}", "agency", "H53") for n in range(60)]
    odd, even = entries[1::2], entries[::2]
    for _ in range(10):
        await asyncio.gather(
            two_instances[0].register(odd + even[:10], replacing="H53"),
            two_instances[1].register(even + odd[:10], replacing="H53"),
        )
    book = await two_instances[0].directory()
    lists = ({e.org_id for e in odd + even[:10]}, {e.org_id for e in even + odd[:10]})
    assert {e.org_id for e in book.entries} in lists  # one of the two, whole


async def test_acknowledgements_at_once_in_any_order_count_each_delivery_once(
    two_instances: list[HubStore],
) -> None:
    await _accept_many(two_instances[0], 300)
    leased = await two_instances[0].lease("H34", NOW, LEASE, 300, 0)
    tally = Tally(NOW.date(), H34.org_id, "received", "")
    receipts = [Receipt(d.id, tally) for d in leased]
    # a node's acknowledgement and its retry, in opposite orders, on two instances at once
    first = await asyncio.gather(
        oracles.acknowledge(two_instances[0], receipts, NOW),
        oracles.acknowledge(two_instances[1], receipts[::-1], NOW),
    )
    assert sorted(first[0] + first[1]) == sorted(d.id for d in leased)
    assert Count(NOW.date(), H34.org_id, "received", "", 300) in await two_instances[0].counters()


async def test_a_connection_back_in_the_pool_holds_no_transaction(fresh: str) -> None:
    store = PostgresHubStore(fresh)
    await store.open()
    try:
        async with store.pool.acquire() as conn:  # a use that left its transaction open
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO nodes (node, token_sha256) VALUES ('H99', 'x')")
        # the next uses of that connection neither see the change nor commit it
        assert await store.node_for_token("x") is None
        await store.add_node("H53", "y")
        assert await store.node_for_token("x") is None
    finally:
        await store.close()


async def test_the_progress_changes_are_folded_when_nobody_reads_them(
    fresh: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("edoc.store.postgres.node.FOLD_EVERY", 0.05)
    store = await open_node_store(fresh)
    watching = await asyncpg.connect(fresh)
    try:
        await _documents_answered(store, ["D1", "D2"])
        deadline = time.monotonic() + 10
        while await watching.fetchval("SELECT COUNT(*) FROM progress_changes"):
            assert time.monotonic() < deadline, "the changes were never folded"
            await asyncio.sleep(0.05)
        counts = await watching.fetch("SELECT metric, state, count FROM progress")
        assert {(r["metric"], r["state"]): r["count"] for r in counts if r["count"]} == {
            ("recipients", "06"): 2,
            ("recipients", "queued"): 2,
            ("due", ""): 4,
            ("on_time", ""): 2,
            ("completed", ""): 2,
        }
    finally:
        await watching.close()
        await store.close()
