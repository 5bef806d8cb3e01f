"""PostgreSQL through asyncpg: a connection pool, versioned migrations, errors translated.

Every store keeps its tables in the database its URL names (give the hub and each node a
database of its own: their table names are the same). The schema is the store's own
business: ``schema_version`` says which of its migrations a database has had, and opening
a store applies the ones it lacks, under an advisory lock so that several instances
starting at once upgrade it once. Connection and server failures come out as
:class:`edoc.errors.StorageError`; a failed statement leaves the pool usable, and a
connection lost with a restarted server is replaced at the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar, TypeAlias

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from edoc import errors
from edoc.urls import without_password

log = structlog.get_logger("edoc.store")

# a pooled connection, as the stores' statements get it
Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"

POOL_SIZE = 10  # connections per store and process
COMMAND_TIMEOUT = 30.0  # seconds a statement may take before the request fails (503)
CONNECT_TIMEOUT = 5.0
MIGRATION_LOCK = 7_041_962  # pg_advisory_xact_lock key: one migrating instance at a time
PROGRESS_LOCK = 7_041_963  # one node instance folding its progress changes at a time


# what goes wrong between us and the server: all of it is "the store does not answer"
FAILURES = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


# a server that is away for now (restarting, not letting anyone in yet), as opposed to
# one that refuses us (password, unknown database): worth waiting for at start
_AWAY = (
    OSError,
    TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.ObjectNotInPrerequisiteStateError,
    asyncpg.TooManyConnectionsError,
    asyncpg.PostgresConnectionError,
)
START_RETRY = 1.0  # seconds between attempts to open a store whose server is away


@contextlib.contextmanager
def translated(doing: str) -> Iterator[None]:
    """asyncpg's and the network's errors as StorageError; a unique violation stays what
    it is (a store turns it into the duplicate it means)."""
    try:
        yield
    except asyncpg.UniqueViolationError:
        raise
    except FAILURES as exc:
        raise errors.StorageError(f"{doing}: {type(exc).__name__}: {exc}") from None


@contextlib.contextmanager
def unique_as(error: Callable[[], errors.EdocError]) -> Iterator[None]:
    """A unique violation, as the error it means: for a change in which only one UNIQUE
    can fail (a row's own conflict is its ON CONFLICT's)."""
    try:
        yield
    except asyncpg.UniqueViolationError:
        raise error() from None


SCHEMA_VERSION = """
CREATE TABLE IF NOT EXISTS schema_version (
    component TEXT PRIMARY KEY,
    version INTEGER NOT NULL
)
"""


async def migrate(conn: asyncpg.Connection, component: str, steps: Sequence[str]) -> int:
    """Apply those of ``steps`` (migration n+1 is steps[n]) that the database lacks, each
    with its version, in one transaction; returns the version reached. ``conn`` bounds no
    statement: a step may take minutes (an index over a large table), and so may another
    instance's upgrade that this one waits for under the lock."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(SCHEMA_VERSION)
        found = await conn.fetchval(
            "SELECT version FROM schema_version WHERE component = $1", component
        )
        version = int(found or 0)
        if version > len(steps):
            raise errors.StorageError(
                f"the {component} tables are at version {version}, made by a newer edoc"
                f" (this one knows {len(steps)})"
            )
        for number, step in enumerate(steps[version:], start=version + 1):
            await conn.execute(step)
            await conn.execute(
                "INSERT INTO schema_version (component, version) VALUES ($1, $2)"
                " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                component,
                number,
            )
        return max(version, len(steps))


async def components(url: str) -> frozenset[str]:
    """Whose tables the database at ``url`` holds (its schema_version's components, e.g.
    "hub"), read without making anything there: none for an empty database. Opening a
    store would make its tables in any database it is given. A server away is waited
    for as opening a store waits (a service started during a database restart)."""
    deadline = time.monotonic() + PostgresDatabase.start_patience
    while True:
        try:
            return await _components_once(url)
        except _AWAY as exc:
            await _retry_or_give_up(url, exc, deadline)
        except FAILURES as exc:
            raise errors.StorageError(_cannot_open(url, exc)) from None


async def _components_once(url: str) -> frozenset[str]:
    conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT)
    try:
        # to_regclass: the table as migrate's CREATE would find it (the search path)
        versioned = await conn.fetchval("SELECT to_regclass('schema_version')") is not None
        rows = await conn.fetch("SELECT component FROM schema_version") if versioned else []
    finally:
        await conn.close()
    return frozenset(str(row[0]) for row in rows)


def _cannot_open(url: str, exc: BaseException) -> str:
    return f"cannot open {without_password(url)}: {type(exc).__name__}: {exc}"


async def _retry_or_give_up(url: str, exc: BaseException, deadline: float) -> None:
    """After a try that found the server away: wait for the next, or give up (StorageError)
    when it would come past ``deadline``."""
    if time.monotonic() + START_RETRY > deadline:
        raise errors.StorageError(_cannot_open(url, exc)) from None
    log.warning("store not answering yet", store=without_password(url), reason=str(exc))
    await asyncio.sleep(START_RETRY)


async def _session_kept(conn: asyncpg.Connection) -> None:
    """Nothing more to undo when a connection goes back to the pool: asyncpg rolls back a
    transaction left open in any case, and the stores leave no session state (settings,
    LISTEN, session advisory locks, cursors) behind. Its default reset undoes those too,
    in a statement of its own after every use: a third of each query's CPU here."""


class PostgresDatabase:
    start_patience: ClassVar[float] = 30.0  # seconds to wait at open for a server away
    component: ClassVar[str] = ""  # whose tables: its row in schema_version
    migrations: ClassVar[tuple[str, ...]] = ()  # never edit one that shipped: add another

    def __init__(self, url: str) -> None:
        self.url = url
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise errors.StorageError("store is not open")
        return self._pool

    async def open(self, up_to: int | None = None) -> None:
        """Connect and bring the schema to the latest version (``up_to``: to that one,
        for the upgrade tests). A server that is away (restarting, refusing connections
        for now) is waited for, up to ``start_patience`` seconds: an instance started
        during a database restart comes up after it instead of exiting."""
        deadline = time.monotonic() + self.start_patience
        while True:
            try:
                await self._open_once(up_to)
                return
            except _AWAY as exc:
                await self.close()
                await _retry_or_give_up(self.url, exc, deadline)
            except FAILURES as exc:
                await self.close()
                raise errors.StorageError(_cannot_open(self.url, exc)) from None
            except BaseException:
                await self.close()
                raise

    async def _open_once(self, up_to: int | None) -> None:
        # the schema on a connection of its own, before the pool: a pooled one bounds each
        # statement to COMMAND_TIMEOUT, and a migration cut there was rolled back and
        # begun again at every try (as a server away), never done
        conn = await asyncpg.connect(self.url, timeout=CONNECT_TIMEOUT)
        try:
            await migrate(conn, self.component, self.migrations[:up_to])
        except BaseException:
            conn.terminate()
            raise
        await conn.close()
        self._pool = await asyncpg.create_pool(
            self.url,
            min_size=1,
            max_size=POOL_SIZE,
            command_timeout=COMMAND_TIMEOUT,
            timeout=CONNECT_TIMEOUT,
            reset=_session_kept,
        )

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(*FAILURES):
                await pool.close()

    async def ping(self) -> None:
        """Whether the store answers: one query on a pooled connection."""
        await self._value("SELECT 1")

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Connection]:
        """One change, all or nothing, committed when the block is left."""
        with translated("store failed"):
            async with self.pool.acquire() as conn, conn.transaction():
                yield conn

    @asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[Connection]:
        """Several reads that see one state of the database."""
        with translated("store failed"):
            async with (
                self.pool.acquire() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                yield conn

    async def _rows(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        with translated("store failed"):
            return list(await self.pool.fetch(sql, *args))

    async def _value(self, sql: str, *args: Any) -> Any:
        with translated("store failed"):
            return await self.pool.fetchval(sql, *args)
