"""Group commit: changes made at the same time share one COMMIT, each all or nothing."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from edoc import errors
from edoc.store.sqlite.database import SqliteDatabase, on_thread, query
from tests.store.trips import counted


class Ledger(SqliteDatabase):
    schema = """
    CREATE TABLE IF NOT EXISTS entries (n INTEGER PRIMARY KEY);
    CREATE TABLE IF NOT EXISTS refs (
        n INTEGER NOT NULL REFERENCES entries(n) DEFERRABLE INITIALLY DEFERRED
    );
    """

    async def open(self) -> None:
        await super().open()
        self.commits = 0
        await self.db.set_trace_callback(self._trace)

    def _trace(self, sql: str) -> None:
        self.commits += sql.strip().upper() == "COMMIT"

    async def add(self, n: int) -> None:
        await self._change(lambda db: db.execute("INSERT INTO entries (n) VALUES (?)", (n,)))

    async def add_dangling_ref(self, n: int) -> None:
        """Checked only at COMMIT (a deferred foreign key): the whole batch's COMMIT fails."""
        await self._change(lambda db: db.execute("INSERT INTO refs (n) VALUES (?)", (n,)))

    async def add_then_fail(self, n: int) -> None:
        """A change whose work raises after a statement: the statement is undone."""

        def work(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO entries (n) VALUES (?)", (n,))
            raise ValueError(n)

        await self._change(work)

    async def add_unless_there(self, n: int) -> None:
        """A refusal judged by what the store holds, the batch's own changes included."""

        def work(db: sqlite3.Connection) -> None:
            if db.execute("SELECT 1 FROM entries WHERE n=?", (n,)).fetchone():
                raise LookupError(f"{n} is there already")
            db.execute("INSERT INTO entries (n) VALUES (?)", (n,))

        await self._change(work)

    async def add_and_read(self, n: int) -> list[int]:
        """A change that reads what it wrote, in the same call."""

        def work(db: sqlite3.Connection) -> list[int]:
            db.execute("INSERT INTO entries (n) VALUES (?)", (n,))
            return [m for (m,) in db.execute("SELECT n FROM entries ORDER BY n")]

        return await self._change(work)


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    store = Ledger(tmp_path / "ledger.sqlite")
    await store.open()
    yield store
    await store.close()


def stored(path: Path) -> list[int]:
    """What another connection sees: committed rows only."""
    with sqlite3.connect(path) as other:
        return [n for (n,) in other.execute("SELECT n FROM entries ORDER BY n")]


async def test_changes_made_together_share_one_commit(ledger: Ledger) -> None:
    await asyncio.gather(*(ledger.add(n) for n in range(20)))
    assert stored(ledger.path) == list(range(20))
    assert 1 <= ledger.commits <= 2


async def test_a_change_at_rest_commits_at_once(ledger: Ledger) -> None:
    await ledger.add(1)
    assert stored(ledger.path) == [1]  # committed before add() returned
    await ledger.add(2)
    assert ledger.commits == 2


async def test_a_failed_change_is_rolled_back_alone(ledger: Ledger) -> None:
    await ledger.add(5)
    results = await asyncio.gather(*(ledger.add(n) for n in (1, 5, 2)), return_exceptions=True)
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert results[0] is None and results[2] is None
    assert stored(ledger.path) == [1, 2, 5]


async def test_a_failed_commit_fails_every_change_in_it(ledger: Ledger) -> None:
    results = await asyncio.gather(
        ledger.add(1), ledger.add_dangling_ref(99), ledger.add(2), return_exceptions=True
    )
    assert all(isinstance(r, errors.StorageError) for r in results), results
    assert stored(ledger.path) == []
    await ledger.add(3)  # the store goes on
    assert stored(ledger.path) == [3]


async def test_a_change_alone_whose_commit_fails_fails(ledger: Ledger) -> None:
    with pytest.raises(errors.StorageError):
        await ledger.add_dangling_ref(99)
    await ledger.add(3)
    assert stored(ledger.path) == [3]


async def test_a_change_cancelled_as_it_begins_does_not_cancel_the_others(
    ledger: Ledger,
) -> None:
    """Cancelled during BEGIN: the batch it opened is still committed for the others."""
    tasks = [asyncio.create_task(ledger.add(n)) for n in range(5)]
    await asyncio.sleep(0)
    tasks[0].cancel()
    await asyncio.gather(*tasks[1:])
    assert set(stored(ledger.path)) >= {1, 2, 3, 4}


async def test_close_commits_what_is_under_way(tmp_path: Path) -> None:
    store = Ledger(tmp_path / "ledger.sqlite")
    await store.open()
    adding = [asyncio.create_task(store.add(n)) for n in range(3)]
    await asyncio.sleep(0.05)
    await store.close()
    await asyncio.gather(*adding)
    assert stored(store.path) == [0, 1, 2]


async def test_a_change_that_raises_is_undone_and_the_batch_goes_on(ledger: Ledger) -> None:
    results = await asyncio.gather(
        ledger.add(1), ledger.add_then_fail(7), ledger.add(2), return_exceptions=True
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], ValueError)
    assert stored(ledger.path) == [1, 2]


async def test_a_change_at_rest_is_one_trip_to_the_thread(ledger: Ledger) -> None:
    """BEGIN, statements, reads and COMMIT go in one call when no one waits to share it."""
    await ledger.add(1)
    with counted(ledger) as trips:
        assert await ledger.add_and_read(2) == [1, 2]
    assert len(trips) == 1
    assert ledger.commits == 2


async def test_changes_made_together_are_one_trip_and_share_one_more(
    ledger: Ledger,
) -> None:
    """All in one call, each in its savepoint, and one call for their COMMIT (a call each
    was a trip to the thread and a future back per change)."""
    with counted(ledger) as trips:
        await asyncio.gather(*(ledger.add(n) for n in range(10)))
    assert len(trips) == 1 + 1
    assert ledger.commits == 1
    assert stored(ledger.path) == list(range(10))


async def test_changes_that_come_while_a_call_is_made_go_together_in_the_next(
    ledger: Ledger,
) -> None:
    """Those queued while the connection's thread makes a batch's changes are made
    together in the next call, after that batch's COMMIT, in the order they came."""
    first = [asyncio.create_task(ledger.add(n)) for n in range(3)]
    await asyncio.sleep(0.001)  # their call under way
    with counted(ledger) as trips:
        results = await asyncio.gather(
            *first, ledger.add_and_read(3), ledger.add_then_fail(9), ledger.add(4),
            return_exceptions=True,
        )  # fmt: skip
    assert results[:3] == [None] * 3 and results[3] == [0, 1, 2, 3]
    assert isinstance(results[4], ValueError) and results[5] is None
    assert len(trips) <= 1 + 1 + 1  # the first COMMIT, the next call, its COMMIT
    assert stored(ledger.path) == [0, 1, 2, 3, 4]


async def test_a_change_that_queues_behind_one_alone_goes_in_the_next_batch(
    ledger: Ledger,
) -> None:
    """One alone commits in its call; those that came meanwhile share the next COMMIT."""
    first = asyncio.create_task(ledger.add(0))
    await asyncio.sleep(0.001)  # its call under way, alone
    await asyncio.gather(first, *(ledger.add(n) for n in range(1, 4)))
    assert ledger.commits == 2
    assert stored(ledger.path) == [0, 1, 2, 3]


async def test_a_read_of_one_query_is_one_trip(ledger: Ledger) -> None:
    await ledger.add(4)
    with counted(ledger) as trips:
        assert await ledger._rows("SELECT n FROM entries") == [(4,)]
    assert len(trips) == 1


async def test_reads_asked_together_are_one_trip_each_with_its_own_answer(ledger: Ledger) -> None:
    for n in (1, 2):
        await ledger.add(n)
    with counted(ledger) as trips:
        answers = await asyncio.gather(
            ledger._rows("SELECT n FROM entries WHERE n=1"),
            ledger._rows("SELECT n FROM nowhere"),  # fails alone
            ledger._read(partial(query, sql="SELECT count(*) FROM entries")),
            return_exceptions=True,
        )
    assert len(trips) == 1
    assert answers[0] == [(1,)] and answers[2] == [(2,)]
    assert isinstance(answers[1], errors.StorageError) and "nowhere" in str(answers[1])


async def test_reads_asked_while_a_trip_is_under_way_go_together_in_the_next(
    ledger: Ledger,
) -> None:
    await ledger.add(1)
    with counted(ledger) as trips:
        first = asyncio.create_task(ledger._rows("SELECT n FROM entries"))
        while not trips:  # until its trip is under way
            await asyncio.sleep(0)
        later = [ledger._rows("SELECT n + ? FROM entries", (k,)) for k in range(3)]
        assert await asyncio.gather(*later) == [[(1,)], [(2,)], [(3,)]]
        assert await first == [(1,)]
    assert len(trips) == 2


async def test_a_read_cancelled_before_its_trip_is_not_made(ledger: Ledger) -> None:
    await ledger.add(1)
    made: list[int] = []

    def read(k: int, conn: sqlite3.Connection) -> list[Any]:
        made.append(k)
        return query(conn, "SELECT n FROM entries")

    asked = [asyncio.create_task(ledger._on_reader(partial(read, k))) for k in range(3)]
    await asyncio.sleep(0)  # each asked, none taken yet
    asked[1].cancel()
    results = await asyncio.gather(*asked, return_exceptions=True)
    assert results[0] == results[2] == [(1,)] and made == [0, 2]
    assert isinstance(results[1], asyncio.CancelledError)
    assert await ledger._rows("SELECT n FROM entries") == [(1,)]  # the store goes on


async def test_close_answers_the_reads_asked_before_it(tmp_path: Path) -> None:
    store = Ledger(tmp_path / "ledger.sqlite")
    await store.open()
    await store.add(1)
    asked = [asyncio.create_task(store._rows("SELECT n FROM entries")) for _ in range(3)]
    await asyncio.sleep(0)
    await store.close()
    assert [await a for a in asked] == [[(1,)]] * 3


async def test_a_read_on_a_closed_store_fails_as_a_storage_error(tmp_path: Path) -> None:
    store = Ledger(tmp_path / "ledger.sqlite")
    await store.open()
    await store.close()
    with pytest.raises(errors.StorageError):
        await store._rows("SELECT 1")


@contextmanager
def commits_held(ledger: Ledger) -> Iterator[tuple[asyncio.Event, asyncio.Event]]:
    """A batch's COMMIT waits for the second event; the first says one is due."""
    due, go = asyncio.Event(), asyncio.Event()
    real = ledger._commit_batch

    async def held() -> None:
        due.set()
        await go.wait()
        await real()

    ledger._commit_batch = held  # type: ignore[method-assign]
    try:
        yield due, go
    finally:
        go.set()
        del ledger._commit_batch


async def entries(ledger: Ledger) -> tuple[list[Any], list[Any]]:
    """What the store reads, by a query alone and by a read of several."""
    sql = "SELECT n FROM entries ORDER BY n"
    return await ledger._rows(sql), await ledger._read(partial(query, sql=sql))


async def test_reads_see_a_batch_once_it_is_committed_not_before(ledger: Ledger) -> None:
    """Between a batch's changes and its COMMIT nothing is stored yet (the COMMIT may
    fail): a read then must not answer from them (the outbox sent what was not stored, the
    hub told a copy to be resent as if the first were stored)."""
    with commits_held(ledger) as (due, go):
        adding = asyncio.gather(*(ledger.add(n) for n in range(3)))
        await due.wait()  # the changes made, in savepoints released, not committed
        assert await entries(ledger) == ([], [])
        go.set()
        await adding
    assert await entries(ledger) == ([(0,), (1,), (2,)],) * 2


async def test_a_clash_with_a_change_of_the_same_batch_is_told_once_that_is_committed(
    ledger: Ledger,
) -> None:
    """Told a row clashes, a caller reads it next: it is there to be read."""

    async def again() -> tuple[list[int], tuple[list[Any], list[Any]]]:
        with pytest.raises(sqlite3.IntegrityError):
            await ledger.add(1)
        return stored(ledger.path), await entries(ledger)

    _, seen = await asyncio.gather(ledger.add(1), again())
    assert seen == ([1], ([(1,)],) * 2)
    assert ledger.commits == 1


async def test_a_clash_with_a_batch_whose_commit_fails_is_the_stores_failure(
    ledger: Ledger,
) -> None:
    """What it clashed with was never stored: not a clash, a store that failed."""
    results = await asyncio.gather(
        ledger.add(1), ledger.add(1), ledger.add_dangling_ref(9), return_exceptions=True
    )
    assert all(isinstance(r, errors.StorageError) for r in results), results
    assert stored(ledger.path) == []


async def test_a_change_cancelled_waiting_for_its_commit_does_not_cancel_the_batch(
    ledger: Ledger,
) -> None:
    """Its change is made (in the batch, its savepoint released): the COMMIT carries it
    like the others, which get their results; only its caller stops waiting."""
    with commits_held(ledger) as (due, go):
        tasks = [asyncio.create_task(ledger.add(n)) for n in range(3)]
        await due.wait()  # each change made, the batch's COMMIT due
        tasks[1].cancel()
        await asyncio.sleep(0)
        go.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], asyncio.CancelledError)
    assert stored(ledger.path) == [0, 1, 2] and ledger.commits == 1
    await ledger.add(3)  # the store goes on
    assert stored(ledger.path) == [0, 1, 2, 3]


async def test_changes_whose_call_is_cut_short_are_told_at_once_not_after_the_commit(
    ledger: Ledger,
) -> None:
    """The call making a batch's changes cancelled (the loop stops): their callers are told
    the store stopped at once, not left waiting for a COMMIT that may never come."""
    with commits_held(ledger):
        tasks = [asyncio.create_task(ledger.add(n)) for n in range(3)]
        while ledger._batch is None:  # the changes are on their way to the thread
            await asyncio.sleep(0)
        assert ledger._maker is not None
        ledger._maker.cancel()
        async with asyncio.timeout(5):
            results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, errors.StorageError) for r in results), results
    assert all("stopped" in str(r) for r in results), results


async def test_a_change_on_a_closed_store_fails_as_a_storage_error(tmp_path: Path) -> None:
    store = Ledger(tmp_path / "ledger.sqlite")
    await store.open()
    await store.close()
    with pytest.raises(errors.StorageError):
        await store.add(1)


async def test_a_refusal_judged_by_a_change_of_its_batch_is_told_once_that_is_committed(
    ledger: Ledger,
) -> None:
    """Told why it was refused, a caller may read what it was refused for: it is stored."""
    with commits_held(ledger) as (due, go):
        refused = asyncio.gather(ledger.add(1), ledger.add_unless_there(1))
        await due.wait()
        await asyncio.sleep(0.05)
        assert not refused.done()  # the 1 it was refused for is not committed yet
        go.set()
        with pytest.raises(LookupError, match="there already"):
            await refused
    assert stored(ledger.path) == [1]


async def test_a_refusal_judged_by_a_batch_whose_commit_fails_is_the_stores_failure(
    ledger: Ledger,
) -> None:
    """What it was refused for was never stored: not a refusal, a store that failed."""
    results = await asyncio.gather(
        ledger.add(1), ledger.add_unless_there(1), ledger.add_dangling_ref(9),
        return_exceptions=True,
    )  # fmt: skip
    assert all(isinstance(r, errors.StorageError) for r in results), results
    assert stored(ledger.path) == []


class Blobs(SqliteDatabase):
    schema = "CREATE TABLE IF NOT EXISTS blobs (name TEXT NOT NULL, body BLOB NOT NULL);"

    async def put(self, name: str, size: int) -> None:
        row = (name, b"x" * size)
        await self._change(lambda db: db.execute("INSERT INTO blobs VALUES (?, ?)", row))

    async def names(self) -> list[str]:
        return [name for (name,) in await self._rows("SELECT name FROM blobs ORDER BY name")]


async def test_a_change_that_fills_the_disk_fails_its_whole_batch_and_stores_none_of_it(
    tmp_path: Path,
) -> None:
    """A full disk makes SQLite roll back the whole batch, not the statement alone: the
    changes before it are gone and those after it must not be made on their own, each
    committed while its caller is told it failed (and tries again: made twice)."""
    store = Blobs(tmp_path / "blobs.sqlite")
    await store.open()
    try:
        [(pages,)] = await store._rows("PRAGMA page_count")
        # the disk holds three pages more: the second change is larger
        await on_thread(store.db, partial(query, sql=f"PRAGMA max_page_count={pages + 3}"))
        results = await asyncio.gather(
            store.put("A", 10), store.put("B", 200_000), store.put("C", 10),
            return_exceptions=True,
        )  # fmt: skip
        assert all(isinstance(r, errors.StorageError) for r in results), results
        assert "full" in str(results[1])
        assert await store.names() == []
        await store.put("D", 10)  # the store goes on
        assert await store.names() == ["D"]
    finally:
        await store.close()


@pytest.mark.parametrize("connection", ["reader", "db"])
async def test_calls_asked_as_the_store_closes_a_connection_are_told_it_is_not_open(
    tmp_path: Path, connection: str
) -> None:
    """Asked while close() waits for a connection to close: StorageError, as on a closed
    store, not aiosqlite's ValueError; and nothing asked is left waiting."""
    store = Ledger(tmp_path / "ledger.sqlite")
    await store.open()
    closed, go = asyncio.Event(), asyncio.Event()
    closing_connection = getattr(store, connection)
    close_it = closing_connection.close

    async def close_then_wait() -> None:
        await close_it()
        closed.set()
        await go.wait()

    closing_connection.close = close_then_wait
    closing = asyncio.create_task(store.close())
    await closed.wait()
    async with asyncio.timeout(5):
        with pytest.raises(errors.StorageError, match="not open"):
            await store._rows("SELECT 1")
        if connection == "reader":  # changes are still made: close() commits them
            adding = asyncio.create_task(store.add(1))
        else:
            with pytest.raises(errors.StorageError, match="not open"):
                await store.add(1)
        go.set()
        await closing
        if connection == "reader":
            await adding
    assert stored(store.path) == ([1] if connection == "reader" else [])
