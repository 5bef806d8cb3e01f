"""Stores, new or made by an earlier release, open with the columns added since, and
what an earlier release kept reads through today's store."""

from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing
import sqlite3
import time
from dataclasses import replace
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier as BarrierType
from pathlib import Path
from typing import Any

import pytest

from edoc import errors
from edoc.store import open_hub_store, open_node_store, sqlite_url
from edoc.store.hub import Count, PackageKey
from edoc.store.node import Event, Progress
from edoc.store.sqlite.database import PAGE_SIZE, WAL_BYTES, SqliteDatabase
from edoc.store.sqlite.hub import SqliteHubStore
from edoc.store.sqlite.node import SqliteNodeStore
from tests.store.test_node import DOCUMENT, NOW, status, status_codes_win


def _pragma(database: Path, pragma: str) -> list[tuple[Any, ...]]:
    """What ``PRAGMA pragma`` says of the file, asked from a connection of its own."""
    connection = sqlite3.connect(database)
    try:
        return connection.execute(f"PRAGMA {pragma}").fetchall()
    finally:
        connection.close()


def _columns(database: Path, table: str) -> set[str]:
    return {row[1] for row in _pragma(database, f"table_info({table})")}


@pytest.mark.parametrize("store_class", [SqliteHubStore, SqliteNodeStore])
async def test_a_store_made_before_its_added_columns_gains_them(
    tmp_path: Path, store_class: type[SqliteDatabase]
) -> None:
    assert store_class.added_columns
    database = tmp_path / "store.sqlite"
    connection = sqlite3.connect(database)
    connection.executescript(store_class.schema)  # what the first release made
    connection.close()
    for table, column, _ in store_class.added_columns:
        assert column not in _columns(database, table)  # declared in added_columns alone

    fresh = tmp_path / "new.sqlite"
    for path in (database, database, fresh):  # opening it again finds them there
        store = store_class(path)
        await store.open()
        await store.close()
        for table, column, _ in store_class.added_columns:
            assert column in _columns(path, table)
        if store_class is SqliteNodeStore:  # and the tables added since
            assert _columns(path, "progress")
        else:  # and the index on a column added since
            indexes = {row[1] for row in _pragma(path, "index_list(packages)")}
            assert "packages_chain" in indexes


def _page_size(database: Path) -> int:
    return int(_pragma(database, "page_size")[0][0])


@pytest.mark.parametrize("store_class", [SqliteHubStore, SqliteNodeStore])
async def test_a_new_store_has_large_pages_and_an_earlier_one_keeps_its_own(
    tmp_path: Path, store_class: type[SqliteDatabase]
) -> None:
    """A new store gets PAGE_SIZE pages; one an earlier release made (SQLite's default
    size) keeps its own and opens. Either checkpoints its WAL at WAL_BYTES."""
    fresh, earlier = tmp_path / "new.sqlite", tmp_path / "earlier.sqlite"
    _first_release(earlier, store_class.schema, "")
    before = _page_size(earlier)
    assert before != PAGE_SIZE
    for path, pages in ((fresh, PAGE_SIZE), (earlier, before)):
        store = store_class(path)
        await store.open()
        try:
            assert _page_size(path) == pages
            async with store.db.execute("PRAGMA wal_autocheckpoint") as cursor:
                assert await cursor.fetchone() == (WAL_BYTES // pages,)
        finally:
            await store.close()


def _first_release(database: Path, schema: str, rows: str) -> None:
    """A store as the first release left it: its tables (no added column) and ``rows``, in
    WAL mode (it opened its stores so)."""
    connection = sqlite3.connect(database)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.executescript(schema + rows)
    finally:
        connection.close()


async def test_what_a_first_release_hub_kept_reads_through_the_store(tmp_path: Path) -> None:
    database = tmp_path / "hub.sqlite"
    _first_release(
        database,
        SqliteHubStore.schema,
        "INSERT INTO packages VALUES (1, 'document', '000.00.12.H53', 'D1', '', 0, 2, 'ab',"
        " '/data/packages/ab.edxml', 4096, 1795507200000);"
        "INSERT INTO deliveries (package_id, recipient, node, priority)"
        " VALUES (1, '000.00.00.H34', 'H34', 2);"
        "INSERT INTO counters VALUES ('2026-11-24', '000.00.12.H53', 'sent', '', 1);"
        "INSERT INTO directory VALUES ('000.00.00.H34', 'Thái Bình', 'province', 'H34');"
        "INSERT INTO meta VALUES ('directory_version', 3);"
        # its index of every delivery, which today's index of the waiting ones replaces
        "CREATE INDEX deliveries_ready ON deliveries (node, delivered_at, priority DESC, id);",
    )
    store = await open_hub_store(sqlite_url(database))
    try:
        assert isinstance(store, SqliteHubStore)
        rows = await store.db.execute_fetchall("SELECT name FROM sqlite_master WHERE type='index'")
        indexes = {row[0] for row in rows}
        assert "deliveries_ready" not in indexes and "deliveries_to_lease" in indexes
        key = PackageKey("document", "000.00.12.H53", "D1", 0, "")
        record = await store.find_package(key)
        assert record is not None and record.recipients == ("000.00.00.H34",)
        assert record.accepted_at == dt.datetime(2026, 11, 24, 8, tzinfo=dt.UTC)
        now = dt.datetime.now(dt.UTC)
        (delivery,) = await store.lease("H34", now, dt.timedelta(seconds=60), 10, 2**20)
        assert (delivery.path, delivery.body, delivery.priority) == (
            "/data/packages/ab.edxml",
            None,
            2,
        )
        assert await store.counters() == [
            Count(dt.date(2026, 11, 24), "000.00.12.H53", "sent", "", 1)
        ]
        book = await store.directory()
        assert book.version == 3 and [e.org_id for e in book.entries] == ["000.00.00.H34"]
    finally:
        await store.close()


# what a first-release node kept: a document sent, its recipient, a document received
FIRST_RELEASE_NODE_ROWS = (
    "INSERT INTO outgoing VALUES (1, 'document', '000.00.12.H53', 'D1', '', NULL, 0,"
    " '/data/outgoing/x.edxml', '{\"due_date\": \"2026-11-30\"}', 1795507200000);"
    "INSERT INTO recipients VALUES (1, '000.00.00.H34', 0, 'sent',"
    ' \'[{"state": "queued", "at": "2026-11-24T08:00:00.123456+00:00"},'
    ' {"state": "sent", "at": "2026-11-24T08:00:01+00:00", "detail": "hub id 9"}]\');'
    "INSERT INTO transfers (outgoing_id, route, state, attempts, next_at, priority)"
    " VALUES (1, 'hub', 'done', 1, 0, 0);"
    "INSERT INTO inbox VALUES (1, '000.00.12.H53', '000.00.00.H34', 'document', 'R1', 0,"
    " '', '/data/inbox/r/package.edxml', '{}', 1795507200000);"
    "INSERT INTO inbox_attachments VALUES (1, 0, 'a.txt', 'text/plain', 1, 'ff', '/p/0');"
    "INSERT INTO answers VALUES (1, '01', 1795507200000);"
)


async def test_what_a_first_release_node_kept_reads_through_the_store(tmp_path: Path) -> None:
    database = tmp_path / "node.sqlite"
    _first_release(
        database,
        SqliteNodeStore.schema,
        FIRST_RELEASE_NODE_ROWS,
    )
    store = await open_node_store(sqlite_url(database))
    try:
        outgoing = await store.outgoing(1)
        assert outgoing is not None and outgoing.path == "/data/outgoing/x.edxml"
        (recipient,) = outgoing.recipients
        assert [(h.state, h.at.isoformat(), h.detail) for h in recipient.history] == [
            ("queued", "2026-11-24T08:00:00.123456+00:00", None),
            ("sent", "2026-11-24T08:00:01+00:00", "hub id 9"),
        ]
        item = await store.inbox_item(1)
        assert item is not None and item.answers == ("01",)
        assert [(a.name, a.path) for a in item.attachments] == [("a.txt", "/p/0")]
        assert await store.inbox_package(1) is None  # its file is the package
        # counted from the rows there when the store first opened with its counts
        assert await store.progress() == Progress({"sent": 1}, due=1, on_time=0, completed=0)
    finally:
        await store.close()
    store = await open_node_store(sqlite_url(database))
    try:  # and not again when it opens again
        assert await store.progress() == Progress({"sent": 1}, due=1, on_time=0, completed=0)
    finally:
        await store.close()


async def test_a_store_counted_before_the_completed_recipients_has_them_counted_once(
    tmp_path: Path,
) -> None:
    """The on-time share judges the recipients that completed (edoc.node.stats): a store
    whose progress was counted by a release without that count gets it from its rows."""
    database = tmp_path / "node.sqlite"
    store = await open_node_store(sqlite_url(database))
    late = NOW + dt.timedelta(days=30)
    try:
        await store.add_outgoing(DOCUMENT, NOW, [])  # due 2026-11-30, two recipients
        await store.add_received_status(status("06"), Event("06", ""), NOW, status_codes_win)
        # completed late (judged, not on time), and without a due date (not judged)
        for document_id, summary in (("D2", DOCUMENT.summary), ("D3", {})):
            await store.add_outgoing(
                replace(DOCUMENT, document_id=document_id, summary=summary), NOW, []
            )
            answered = status("06", document_id=document_id)
            await store.add_received_status(answered, Event("06", ""), late, status_codes_win)
    finally:
        await store.close()
    earlier = sqlite3.connect(database)
    try:  # as that release left it: no trigger, no row of the count
        earlier.execute("DROP TRIGGER progress_of_completed_due")
        earlier.execute("DELETE FROM progress WHERE metric = 'completed'")
        earlier.commit()
    finally:
        earlier.close()
    for _ in range(2):  # counted when it first opens, and not again
        store = await open_node_store(sqlite_url(database))
        try:
            counted = Progress({"06": 3, "queued": 3}, due=4, on_time=1, completed=2)
            assert await store.progress() == counted
        finally:
            await store.close()


async def test_two_opening_a_store_of_an_earlier_release_at_once_both_open_it(
    tmp_path: Path,
) -> None:
    """A service and `edoc node add-agency` may open a store at the same moment: both find
    the columns and tables added since missing, and only one may add them (the other
    failed with "duplicate column name"), and the progress is counted once."""
    database = tmp_path / "node.sqlite"
    _first_release(database, SqliteNodeStore.schema, FIRST_RELEASE_NODE_ROWS)
    stores = [SqliteNodeStore(database), SqliteNodeStore(database)]
    opened = await asyncio.gather(*(store.open() for store in stores), return_exceptions=True)
    try:
        assert opened == [None, None]
        for store in stores:
            assert await store.progress() == Progress({"sent": 1}, due=1, on_time=0, completed=0)
    finally:
        for store in stores:
            await store.close()


def _open_when_both_ready(database: Path, ready: BarrierType, failures: Queue[str]) -> None:
    """One process's open of ``database``, at the same moment as the other's."""

    async def open_and_close() -> None:
        store = SqliteHubStore(database)
        ready.wait(timeout=30)
        try:
            await store.open()
        except Exception as exc:  # reported to the test, whatever it is
            failures.put(repr(exc))
        finally:
            await store.close()

    asyncio.run(open_and_close())


def test_two_processes_making_a_new_store_at_once_both_open_it_in_wal_mode(
    tmp_path: Path,
) -> None:
    """Two hub instances (or a service and `edoc node add-agency`) making a new store both
    switch it to WAL; SQLite answers one of them "database is locked" without waiting
    (about one pair in ten failed), and that one must try again."""
    forked = multiprocessing.get_context("fork")
    failures: Queue[str] = forked.Queue()
    for attempt in range(60):
        database = tmp_path / f"hub-{attempt}.sqlite"
        ready = forked.Barrier(2)
        pair = [
            forked.Process(
                target=_open_when_both_ready, args=(database, ready, failures), daemon=True
            )
            for _ in range(2)
        ]
        try:
            for process in pair:
                process.start()
            for process in pair:
                process.join(timeout=60)
        finally:
            for process in pair:
                process.kill()  # one that hangs must not hang the run
        assert [process.exitcode for process in pair] == [0, 0]
        assert failures.empty(), f"attempt {attempt}: {failures.get()}"
        connection = sqlite3.connect(database)
        try:
            assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        finally:
            connection.close()


async def test_a_store_locked_for_longer_fails_to_open_after_the_patience_not_each_try(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another connection holds the new file's lock: the switch to WAL waits out sqlite3's
    busy timeout (5 s) and is not tried again once WAL_PATIENCE is spent."""
    monkeypatch.setattr("edoc.store.sqlite.database.WAL_PATIENCE", 0.5)
    database = tmp_path / "hub.sqlite"
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        with pytest.raises(errors.StorageError, match="locked"):
            await SqliteHubStore(database).open()
        assert time.monotonic() - started < 9  # one try's busy timeout, not several
    finally:
        holder.execute("ROLLBACK")
        holder.close()
