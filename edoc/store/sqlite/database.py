"""SQLite through aiosqlite: WAL, one connection per service for its changes and one for
its reads, errors translated.

Every change a service answers 2xx for is committed first (synchronous=FULL), so a
kill -9 or a power cut loses nothing that was acknowledged; changes made at the same
time share one commit. Reads go through a connection of their own: in WAL mode it sees
committed rows only, never those of a batch not yet committed (which may yet fail, or
never be). sqlite errors (disk full, read-only, corruption) come out as
:class:`edoc.errors.StorageError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import aiosqlite

from edoc import errors

T = TypeVar("T")


def to_ms(moment: dt.datetime) -> int:
    """Times are stored as integer milliseconds since the epoch (UTC)."""
    return int(moment.timestamp() * 1000)


def from_ms(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(value / 1000, dt.UTC)


class SqliteDatabase:
    schema: ClassVar[str] = ""
    # columns added since the schema's first release: (table, column, declaration), added
    # when a store opens without them (a new one, or one made by an earlier release), so
    # each is declared once
    added_columns: ClassVar[tuple[tuple[str, str, str], ...]] = ()

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None  # changes
        self._reader: aiosqlite.Connection | None = None  # reads: committed rows only
        self._writing = asyncio.Lock()  # one connection: one change at a time
        self._waiting = 0  # changes waiting for their turn (asyncio.Lock does not say)
        self._batch: asyncio.Future[None] | None = None  # the open batch's COMMIT
        self._committer: asyncio.Task[None] | None = None  # held: the loop keeps tasks weakly

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise errors.StorageError("store is not open")
        return self._db

    @property
    def reader(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise errors.StorageError("store is not open")
        return self._reader

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(self.path.parent, os.W_OK):
            # SQLite itself opens a read-only store without a word when the WAL files of
            # an earlier run are there (a crash leaves them); it would fail at each write
            raise errors.StorageError(f"cannot open {self.path}: its folder is not writable")
        try:
            self._db = await aiosqlite.connect(self.path, isolation_level=None)
            for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
                await self._db.execute(f"PRAGMA {pragma}")
            await self._db.executescript(self.schema)
            await self._add_columns()
            # opened on the schema made above; never writes (query_only: a bug that tried
            # would fail loudly rather than write outside the group commit)
            self._reader = await aiosqlite.connect(self.path, isolation_level=None)
            await self._reader.execute("PRAGMA query_only=ON")
        except sqlite3.Error as exc:
            # close what was opened: its worker thread would keep the process alive, a
            # service that printed its error and then hung instead of exiting
            await self.close()
            raise errors.StorageError(f"cannot open {self.path}: {exc}") from None

    async def ping(self) -> None:
        """Whether the store answers: a query through each connection's thread (a store
        whose reads answer but whose changes cannot is not well)."""
        try:
            await on_thread(self.db, partial(query, sql="SELECT 1"))
        except sqlite3.Error as exc:
            raise errors.StorageError(f"store failed: {exc}") from None
        await self._rows("SELECT 1")

    async def _add_columns(self) -> None:
        for table, column, declaration in self.added_columns:
            present = await self.db.execute_fetchall(
                "SELECT 1 FROM pragma_table_info(?) WHERE name=?", (table, column)
            )
            if not present:
                await self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.close()
            self._reader = None
        if self._db is not None:
            async with self._writing:
                await self._commit_batch()  # changes under way are committed, not lost
            await self._db.close()
            self._db = None

    async def _change(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` as one change, all or nothing, committed before this returns.

        The whole change (BEGIN when it opens a batch, its savepoint, ``work``'s statements
        and reads, the release) is one call on the connection's thread: a trip there and
        back per statement was most of what the store cost the event loop.

        Group commit: with synchronous=FULL every COMMIT is an fsync, and under load those
        fsyncs were most of the time a document waited. Changes that queue for the
        connection while a batch is open join it, each in its own savepoint (one that
        fails is rolled back alone), and one COMMIT carries them all; nobody returns
        before it. A change with no batch open and nobody waiting behind it has no one to
        share a COMMIT with: it commits in the same call (one trip in all). ``work``
        raising sqlite3.IntegrityError comes out as it is (the caller knows what it
        means), once the batch it was tried in is committed: the row it clashes with may
        be in that batch, and callers read it next, through the connection that sees
        committed rows only."""
        clash: sqlite3.IntegrityError | None = None
        try:
            async with self._turn() as db:
                if self._batch is None and await self._nobody_waiting():
                    return await on_thread(db, partial(_commit_alone, work))
                opens = self._batch is None
                committed = self._joined()
                try:
                    result = await on_thread(db, partial(_in_savepoint, work, opens))
                except sqlite3.IntegrityError as exc:
                    clash = exc
            await asyncio.shield(committed)  # one waiter cancelled must not cancel the batch
            if clash is not None:
                raise clash
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise errors.StorageError(f"store failed: {exc}") from None
        return result

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection, one change at a time; counted among those waiting until then."""
        self._waiting += 1
        try:
            await self._writing.acquire()
        finally:
            self._waiting -= 1
        try:
            yield self.db  # closed: fails here, before a batch is opened
        finally:
            self._writing.release()

    def _joined(self) -> asyncio.Future[None]:
        """The open batch's COMMIT; a batch opened if none is."""
        if self._batch is None:
            # the batch first: a change cancelled on its way leaves it to be committed
            self._batch = asyncio.get_running_loop().create_future()
            # behind the changes already waiting for the connection: they join in
            self._committer = asyncio.create_task(self._commit_when_ready())
        return self._batch

    async def _nobody_waiting(self) -> bool:
        """Whether no other change waits to share a batch, once those made ready with this
        one (the same turn of the loop) had the time to ask for theirs."""
        if self._waiting:
            return False
        await asyncio.sleep(0)
        return not self._waiting

    async def _commit_when_ready(self) -> None:
        async with self._writing:
            await self._commit_batch()

    async def _commit_batch(self) -> None:
        batch, self._batch = self._batch, None
        if batch is None:
            return
        try:
            await on_thread(self.db, _commit)
        except sqlite3.Error as exc:
            batch.set_exception(errors.StorageError(f"store failed: {exc}"))
        else:
            batch.set_result(None)

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work``'s queries, in one trip to the reading connection's thread, all on one
        snapshot of what is committed (a transaction of their own: a batch committed
        between two of them is not half seen)."""
        return await self._on_reader(partial(_in_snapshot, work))

    async def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        """One query's rows, in one trip (execute + fetch + close would be three); one
        statement sees one snapshot without a transaction around it."""
        return await self._on_reader(partial(query, sql=sql, params=tuple(params)))

    async def _on_reader(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await on_thread(self.reader, work)
        except sqlite3.Error as exc:
            raise errors.StorageError(f"store failed: {exc}") from None


def on_thread(db: aiosqlite.Connection, work: Callable[[sqlite3.Connection], T]) -> Awaitable[T]:
    """``work(connection)`` on the connection's own thread: one trip, however many
    statements it runs.

    aiosqlite has no public way to do this; Connection._execute (queue a function for its
    thread, await its result) has been there since its early releases, and this is the only
    place that uses it."""
    run: Callable[[Callable[[], T]], Awaitable[T]] = db._execute  # untyped there
    return run(lambda: work(db._conn))


def query(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    """A query's rows (called on the connection's thread)."""
    return conn.execute(sql, params).fetchall()


def _in_savepoint(
    work: Callable[[sqlite3.Connection], T], opens: bool, conn: sqlite3.Connection
) -> T:
    """One change in its own savepoint of the batch (BEGIN when it opens the batch)."""
    if opens:
        conn.execute("BEGIN IMMEDIATE")
    conn.execute("SAVEPOINT change")
    try:
        result = work(conn)
    except BaseException:
        conn.execute("ROLLBACK TO change")
        conn.execute("RELEASE change")
        raise
    conn.execute("RELEASE change")
    return result


def _in_snapshot(work: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> T:
    """``work``'s reads in one read transaction (WAL: one snapshot, committed rows only)."""
    conn.execute("BEGIN")
    try:
        return work(conn)
    finally:
        conn.execute("COMMIT")  # ends the snapshot; a read has nothing to write


def _commit_alone(work: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> T:
    """One change as a transaction of its own, committed."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    try:
        _commit(conn)
    except sqlite3.Error as exc:  # a failed COMMIT is the store's, whatever its kind
        raise errors.StorageError(f"store failed: {exc}") from None
    return result


def _commit(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("COMMIT")
    except sqlite3.Error:
        with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already
            conn.execute("ROLLBACK")
        raise
