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
import itertools
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, TypeVar, cast

import aiosqlite

from edoc import errors
from edoc.retry import Backoff

T = TypeVar("T")


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MILLISECOND = dt.timedelta(milliseconds=1)


def to_ms(moment: dt.datetime) -> int:
    """Times are stored as integer milliseconds since the epoch (UTC). Counted exactly:
    from 2038 (2**31 s) a float timestamp times 1000 fell a millisecond short of some
    times read back (from_ms), stored again a millisecond early: a step of the hub's
    retention, starting after the moment the step before reached, looked at that
    moment's packages again, and for ever if they were more than its limit."""
    return (moment.astimezone(dt.UTC) - _EPOCH) // _MILLISECOND


def from_ms(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(value / 1000, dt.UTC)


# what one change came to on the connection's thread: made (and its result), or not (and
# what it raised)
Outcome = tuple[bool, Any]
# told to a change's caller: its outcome, and the COMMIT of the batch it is in (None: it
# was committed, or failed, alone)
Made = tuple[bool, Any, "asyncio.Future[None] | None"]
Queued = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Made]"]
Asked = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Outcome]"]


class SqliteDatabase:
    schema: ClassVar[str] = ""
    # columns added since the schema's first release: (table, column, declaration), added
    # when a store opens without them (a new one, or one made by an earlier release), so
    # each is declared once
    added_columns: ClassVar[tuple[tuple[str, str, str], ...]] = ()
    # tables and indexes added since, each a script run at every open once the columns are
    # there: it makes what is missing (a table filled from the rows already there)
    added_scripts: ClassVar[tuple[str, ...]] = ()

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None  # changes
        self._reader: aiosqlite.Connection | None = None  # reads: committed rows only
        self._writing = asyncio.Lock()  # one connection: one call of changes, or a COMMIT
        self._queued: list[Queued] = []  # changes waiting to be made, in order
        self._maker: asyncio.Task[None] | None = None  # making them (held: see _committer)
        self._batch: asyncio.Future[None] | None = None  # the open batch's COMMIT
        self._committer: asyncio.Task[None] | None = None  # held: the loop keeps tasks weakly
        self._asked: list[Asked] = []  # reads waiting for the reading connection, in order
        self._asker: asyncio.Task[None] | None = None  # taking them there (held, as above)

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
            self._db = await _connected(self.path)
            # a new store's pages (a no-op for an existing one: SQLite reads its size
            # from the file): a package of ~275 KB was ~70 pages of 4 KB, each a WAL
            # frame and a system call to write, read back and checkpoint
            await self._db.execute(f"PRAGMA page_size={PAGE_SIZE}")
            await _write_ahead(self._db)
            await _checkpoint_at(self._db, WAL_BYTES)
            for pragma in ("synchronous=FULL", "foreign_keys=ON"):
                await self._db.execute(f"PRAGMA {pragma}")
            await self._db.executescript(self.schema)
            await self._add_columns()
            await self._add_scripts()
            # opened on the schema made above; never writes (query_only: a bug that tried
            # would fail loudly rather than write outside the group commit)
            self._reader = await _connected(self.path)
            await self._reader.execute("PRAGMA query_only=ON")
        except sqlite3.Error as exc:
            # close what was opened: its worker thread would keep the process alive, a
            # service that printed its error and then hung instead of exiting
            await self.close()
            raise errors.StorageError(f"cannot open {self.path}: {exc}") from None
        except asyncio.CancelledError:  # (`edoc up` registering: another store failed)
            await self.close()  # its threads end before the loop they answer to does
            raise

    async def ping(self) -> None:
        """Whether the store answers: a query through each connection's thread (a store
        whose reads answer but whose changes cannot is not well)."""
        try:
            await on_thread(self.db, partial(query, sql="SELECT 1"))
        except sqlite3.Error as exc:
            raise errors.StorageError(f"store failed: {exc}") from None
        await self._rows("SELECT 1")

    async def _add_columns(self) -> None:
        # in one transaction holding the write lock: two processes opening a store at once
        # (a service and `edoc node add-agency`) cannot both find a column missing
        await self.db.execute("BEGIN IMMEDIATE")
        try:
            for table, column, declaration in self.added_columns:
                present = await self.db.execute_fetchall(
                    "SELECT 1 FROM pragma_table_info(?) WHERE name=?", (table, column)
                )
                if not present:
                    await self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        except BaseException:
            await self.db.execute("ROLLBACK")
            raise
        await self.db.execute("COMMIT")

    async def _add_scripts(self) -> None:
        for script in self.added_scripts:
            await self.db.executescript(f"BEGIN IMMEDIATE; {script} COMMIT;")

    async def close(self) -> None:
        # each connection is let go before it is closed: a call asked meanwhile is told
        # the store is not open (StorageError), not aiosqlite's ValueError
        while self._asker is not None:  # reads asked are answered
            await asyncio.wait([self._asker])
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await reader.close()
        if self._db is not None:
            while self._maker is not None:  # changes queued are made
                await asyncio.wait([self._maker])
            async with self._writing:
                await self._commit_batch()  # changes under way are committed, not lost
                db, self._db = self._db, None
            await db.close()

    async def _change(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` as one change, all or nothing, committed before this returns.

        The whole change (BEGIN when it opens a batch, its savepoint, ``work``'s statements
        and reads, the release) is made on the connection's thread, in one call with every
        other change waiting at that moment (:meth:`_make_queued`): a trip there and back
        per statement, then per change, was most of what the store cost the event loop.

        Group commit: with synchronous=FULL every COMMIT is an fsync, and under load those
        fsyncs were most of the time a document waited. Changes asked in the same turn of
        the loop, or while a COMMIT is under way, go together in one batch, each in its own
        savepoint (one that fails is rolled back alone), and one COMMIT carries them all;
        nobody returns before it. A change with no batch open and nobody waiting beside it
        has no one to share a COMMIT with: it commits in the same call (one trip in all).
        Whatever ``work`` raises comes out as it is (sqlite3.IntegrityError too: the caller
        knows what it means) once the batch it was tried in is committed: the row it clashes
        with, or those a refusal was judged by, may be in that batch, and callers read them
        next, through the connection that sees committed rows only; that COMMIT failing,
        they were never stored, and the caller is told the store failed. (The store failing
        in ``work``, or the call making it cut short, is told at once.) A caller cancelled
        before its change is made leaves it unmade; after, the batch still carries it."""
        self.db  # noqa: B018 (closed: StorageError here, before anything is queued)
        made: asyncio.Future[Made] = asyncio.get_running_loop().create_future()
        self._queued.append((work, made))
        if self._maker is None:
            self._maker = asyncio.create_task(self._make_queued())
        try:
            done, value, committed = await made
            if committed is not None and not _store_failed(done, value):
                await asyncio.shield(committed)  # one waiter cancelled must not cancel the batch
            if not done:
                raise value
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise errors.StorageError(f"store failed: {exc}") from None
        return cast(T, value)

    async def _make_queued(self) -> None:
        """Make the changes queued, all those waiting in one call on the connection's
        thread, until none waits; each one's caller is told what it came to."""
        try:
            while self._queued:
                async with self._writing:
                    if self._batch is None:
                        # those made ready in the same turn of the loop join this one
                        await asyncio.sleep(0)
                    taken = [(work, made) for work, made in self._queued if not made.cancelled()]
                    self._queued = []
                    if taken:
                        await self._make(taken)
        finally:
            self._maker = None

    async def _make(self, taken: list[Queued]) -> None:
        """``taken``'s changes in one call: alone, committed in it; else in the open batch
        (one opened if none is), to be committed by its COMMIT."""
        works = [work for work, _ in taken]
        committed: asyncio.Future[None] | None = None
        outcomes: list[Outcome] = []
        try:
            db = self.db  # closed meanwhile: StorageError for each, before a batch opens
            if self._batch is None and len(works) == 1:
                outcomes = [await on_thread(db, partial(_alone, works[0]))]
            else:
                opens = self._batch is None
                committed = self._joined()
                outcomes = await on_thread(db, partial(_in_savepoints, works, opens))
        except Exception as exc:  # BEGIN failed, or the store closed: each change's failure
            outcomes = [(False, exc)] * len(works)
        finally:  # cancelled (the loop stops): nobody taken is left waiting for ever
            for made, (done, value) in _unanswered(taken, outcomes):
                made.set_result((done, value, committed))

    def _joined(self) -> asyncio.Future[None]:
        """The open batch's COMMIT; a batch opened if none is."""
        if self._batch is None:
            # the batch first: a change cancelled on its way leaves it to be committed
            self._batch = asyncio.get_running_loop().create_future()
            # behind the changes already waiting for the connection: they join in
            self._committer = asyncio.create_task(self._commit_when_ready())
        return self._batch

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
        """``work`` on the reading connection's thread, in one trip with every other read
        asked meanwhile (:meth:`_read_asked`). A trip there and back cost the event loop
        about five times a read by its key (bench/HISTORY.md, part thirteen), and the hub
        asked one per package of a batch, all at once. A read is answered when its trip
        is over: behind those asked before it, as in a queue of one each, and beside
        those asked in the same turn of the loop."""
        self.reader  # noqa: B018 (closed: StorageError here, before anything is queued)
        asked: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._asked.append((work, asked))
        if self._asker is None:
            self._asker = asyncio.create_task(self._read_asked())
        done, value = await asked
        if done:
            return cast(T, value)
        if isinstance(value, sqlite3.Error):
            raise errors.StorageError(f"store failed: {value}") from None
        raise value

    async def _read_asked(self) -> None:
        """The reads asked, all those waiting in one trip, until none waits; each one's
        caller is told what it came to."""
        try:
            while self._asked:
                taken = [(work, asked) for work, asked in self._asked if not asked.cancelled()]
                self._asked = []
                if taken:
                    await self._read_taken(taken)
        finally:  # cancelled (the loop stops): those asked meanwhile are not left waiting
            for asked, outcome in _unanswered(self._asked, []):
                asked.set_result(outcome)
            self._asked = []
            self._asker = None

    async def _read_taken(self, taken: list[Asked]) -> None:
        outcomes: list[Outcome] = []
        try:
            works = [work for work, _ in taken]
            outcomes = await on_thread(self.reader, partial(_each, works))
        except Exception as exc:  # the store closed: each read's failure
            outcomes = [(False, exc)] * len(taken)
        finally:  # cancelled (the loop stops): nobody taken is left waiting for ever
            for asked, outcome in _unanswered(taken, outcomes):
                asked.set_result(outcome)


PAGE_SIZE = 16384  # bytes (bench/HISTORY.md, part twelve: larger cost small changes more)
WAL_BYTES = 4 * 1024 * 1024  # a commit checkpoints the WAL once it holds this much
WAL_PATIENCE = 5.0  # seconds a new store's switch to WAL is tried for (sqlite3's timeout)


async def _checkpoint_at(db: aiosqlite.Connection, wal_bytes: int) -> None:
    """SQLite's own limit counts pages (1,000): with pages of 16 KB each store's WAL
    would grow to 16 MB before a checkpoint, four times what it was."""
    async with db.execute("PRAGMA page_size") as cursor:
        (page_size,) = await cursor.fetchone() or (PAGE_SIZE,)
    await db.execute(f"PRAGMA wal_autocheckpoint={max(1, wal_bytes // page_size)}")


async def _write_ahead(db: aiosqlite.Connection) -> None:
    """The store in WAL mode (kept in the file: a store switched once stays switched).

    Two processes making a new store at once (two hub instances, a service and
    `edoc node add-agency`) both switch it; SQLite answers one of them "database is
    locked" at once rather than wait on a lock the other may be waiting on (its busy
    timeout is not asked), so that one tries again after a jittered moment, by when the
    store is switched. A lock held for longer (a try that waited out the busy timeout)
    fails the open after WAL_PATIENCE seconds in all, as a single try would."""
    backoff = Backoff(base=0.01, cap=0.2)
    deadline = time.monotonic() + WAL_PATIENCE
    while True:
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        await backoff.failed()


def on_thread(db: aiosqlite.Connection, work: Callable[[sqlite3.Connection], T]) -> Awaitable[T]:
    """``work(connection)`` on the connection's own thread: one trip, however many
    statements it runs.

    aiosqlite has no public way to do this; Connection._execute (queue a function for its
    thread, await its result) has been there since its early releases, and this is the only
    place that uses it."""
    run: Callable[[Callable[[], T]], Awaitable[T]] = db._execute  # untyped there
    return run(lambda: work(db._conn))


async def _connected(path: Path) -> aiosqlite.Connection:
    """A connection to ``path``, not left half made by a cancellation: aiosqlite's thread
    would finish it later and answer to an event loop closed by then, a traceback from
    the thread. Cancelled, it waits for the connection, closes it, and is cancelled."""
    opening = asyncio.ensure_future(aiosqlite.connect(path, isolation_level=None))
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        with contextlib.suppress(sqlite3.Error):
            await (await opening).close()
        raise


def table_names(path: Path) -> frozenset[str]:
    """The tables of the SQLite file ``path`` (none when no file is there), read without
    making anything: opening a store makes the file, its folders and its tables."""
    if not path.is_file():
        return frozenset()
    # by URI, mode=rw: a file not there is not made (nor is one named with `?` or `#`
    # another). Not mode=ro: a read-only connection cannot remove the WAL files it
    # makes on a store in WAL mode, left behind next to it
    uri = f"{path.resolve().as_uri()}?mode=rw"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    except sqlite3.Error as exc:
        raise errors.StorageError(f"cannot open {path}: {exc}") from None
    return frozenset(row[0] for row in rows)


@contextlib.contextmanager
def unique_as(column: str, error: Callable[[], errors.EdocError]) -> Iterator[None]:
    """The UNIQUE on ``column`` (``table.column``), failing, as the error it means."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        if column not in str(exc):
            raise
        raise error() from None


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
        if conn.in_transaction:  # else SQLite rolled back the whole batch (_in_savepoints)
            conn.execute("ROLLBACK TO change")
            conn.execute("RELEASE change")
        raise
    conn.execute("RELEASE change")
    return result


def _in_savepoints(
    works: Sequence[Callable[[sqlite3.Connection], Any]], opens: bool, conn: sqlite3.Connection
) -> list[Outcome]:
    """Each of ``works`` in its own savepoint of the batch (BEGIN first when they open it):
    what each came to, one failing leaving the others be.

    But a disk full or an I/O error may make SQLite roll back the whole transaction, not
    the statement alone: the changes made before it are gone (the batch's COMMIT then
    fails, and tells their callers), and those after it are not made, or each would run
    and commit on its own, outside the batch, while its caller was told it failed."""
    if opens:
        conn.execute("BEGIN IMMEDIATE")
    outcomes: list[Outcome] = []
    for work in works:
        if not conn.in_transaction:
            outcomes.append((False, sqlite3.OperationalError("its batch was rolled back")))
            continue
        outcomes.extend(_each([partial(_in_savepoint, work, False)], conn))
    return outcomes


def _alone(work: Callable[[sqlite3.Connection], Any], conn: sqlite3.Connection) -> Outcome:
    """One change committed alone (:func:`_commit_alone`): what it came to."""
    return _each([partial(_commit_alone, work)], conn)[0]


def _store_failed(done: bool, value: Any) -> bool:
    """Whether a change failed for the store itself (a full disk, the store stopped), whatever
    its batch holds: told at once, with its own reason."""
    if done or isinstance(value, sqlite3.IntegrityError):
        return False
    return isinstance(value, (sqlite3.Error, errors.StorageError))


def _unanswered(
    taken: Sequence[tuple[Any, asyncio.Future[Any]]], outcomes: Sequence[Outcome]
) -> Iterator[tuple[asyncio.Future[Any], Outcome]]:
    """Each future of ``taken`` not yet answered, with its outcome: those ``outcomes``
    has none for (their call was cut short) are told the store stopped."""
    stopped: Outcome = (False, errors.StorageError("store failed: it was stopped"))
    for (_, future), outcome in itertools.zip_longest(taken, outcomes, fillvalue=stopped):
        if not future.done():
            yield future, outcome


def _each(
    works: Sequence[Callable[[sqlite3.Connection], Any]], conn: sqlite3.Connection
) -> list[Outcome]:
    """Each of ``works`` in turn: what each came to, one failing leaving the others be."""
    outcomes: list[Outcome] = []
    for work in works:
        try:
            outcomes.append((True, work(conn)))
        except Exception as exc:
            outcomes.append((False, exc))
    return outcomes


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
        if conn.in_transaction:  # else SQLite rolled it back itself (a disk full)
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
