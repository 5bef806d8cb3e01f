"""The PostgreSQL server the tests use: ``EDOC_TEST_POSTGRES`` (default the machine's own,
user root, trust). A test run creates databases of its own on it and drops them at the
end. With no server answering, the PostgreSQL tests are skipped on a developer's machine
and fail in CI (CI=true), where .ci/run starts one: a green CI means they ran.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

SERVER = os.environ.get("EDOC_TEST_POSTGRES", "postgresql://root@127.0.0.1:5432/test")


def url_of(database: str) -> str:
    """The URL of ``database`` on the test server."""
    return urlunsplit(urlsplit(SERVER)._replace(path=f"/{database}"))


async def _admin(*statements: str) -> None:
    conn = await asyncpg.connect(SERVER, timeout=5)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _answers() -> str | None:
    """None if the server answers, else why not."""
    try:
        asyncio.run(_admin("SELECT 1"))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return f"no PostgreSQL answers at {SERVER}: {type(exc).__name__}: {exc}"
    return None


def require_server() -> None:
    """Skip (fail in CI) when the test server does not answer."""
    why = _answers()
    if why is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why} (CI must run the PostgreSQL tests: .ci/run starts a server)")
    pytest.skip(why)


def create(database: str) -> str:
    """A new, empty database (dropped first if a killed run left it); its URL."""
    asyncio.run(
        _admin(
            f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)', f'CREATE DATABASE "{database}"'
        )
    )
    return url_of(database)


def drop(database: str) -> None:
    asyncio.run(dropping(database))


async def dropping(database: str) -> None:
    """Drop ``database`` now, ending its sessions (from a test's own event loop)."""
    await _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def run_name(what: str) -> str:
    """A database name of this test run's own."""
    return f"edoc_test_{os.getpid()}_{what}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _drop_left_behind() -> None:
    """Drop the databases of test runs that were killed before they could."""
    conn = await asyncpg.connect(SERVER, timeout=5)
    try:
        names = [r[0] for r in await conn.fetch("SELECT datname FROM pg_database")]
        for name in names:
            pid = name.removeprefix("edoc_test_").partition("_")[0]
            if name.startswith("edoc_test_") and pid.isdigit() and not _alive(int(pid)):
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def databases(*what: str) -> Iterator[dict[str, str]]:
    """Databases of this run, one per name in ``what`` (their URLs), dropped after."""
    require_server()
    asyncio.run(_drop_left_behind())
    names = {w: run_name(w) for w in what}
    try:
        yield {w: create(name) for w, name in names.items()}
    finally:
        for name in names.values():
            drop(name)


def fresh_database(what: str) -> Iterator[str]:
    """An empty database of one test's own (its URL), dropped after: a fixture's body."""
    require_server()
    name = run_name(what)
    url = create(name)
    yield url
    drop(name)


async def empty(url: str) -> None:
    """Empty every table of the store at ``url`` but the schema's version."""
    conn = await asyncpg.connect(url, timeout=5)
    try:
        tables = await conn.fetch(
            "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = current_schema()"
            " AND tablename <> 'schema_version'"
        )
        if tables:
            names = ", ".join(t[0] for t in tables)
            await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()
