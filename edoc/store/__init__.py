"""Stores, built from configuration: a URL names the backend and where its data lives.

``sqlite:///relative/path`` and ``sqlite:////absolute/path`` (the file is created when
missing); ``postgresql://user:password@host:port/database`` (or ``postgres://``: the
store creates and upgrades its tables; give each service a database of its own). A new
backend is one more scheme here, implementing the interfaces of :mod:`edoc.store.hub` and
:mod:`edoc.store.node`; each backend's module is imported only when a URL names it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from edoc import errors
from edoc.store.hub import HubStore
from edoc.store.node import NodeStore
from edoc.urls import POSTGRESQL_SCHEMES, without_password

SQLITE = "sqlite:///"


def sqlite_url(path: Path) -> str:
    """The URL of an SQLite store in the file ``path``."""
    return f"{SQLITE}{path}"


def _sqlite_path(url: str) -> Path:
    path = url[len(SQLITE) :]
    if not path:
        raise errors.UnknownStore(f"{url!r} names no file: sqlite:///path/to/file")
    return Path(path)


def sqlite_file(url: str) -> Path | None:
    """The file an SQLite store's URL names; None for another backend's."""
    return _sqlite_path(url) if url.startswith(SQLITE) else None


def _scheme_error(url: str) -> errors.UnknownStore:
    # the scheme alone: the rest of a database URL may hold a password
    scheme = url.partition("://")[0] if "://" in url else "(none)"
    if scheme == "sqlite":
        return errors.UnknownStore("an SQLite store's URL is sqlite:///path/to/file")
    return errors.UnknownStore(
        f"unknown store scheme {scheme!r}: use sqlite:///path/to/file or postgresql://host/db"
    )


def is_postgresql(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL database."""
    scheme, separator, _ = url.partition("://")
    return bool(separator) and scheme in POSTGRESQL_SCHEMES


def check_url(url: str) -> None:
    """Raise the UnknownStore that opening a store at ``url`` would, without opening it:
    `edoc up --store` refuses one before it provisions and saves a network with it."""
    if url.startswith(SQLITE):
        _sqlite_path(url)
    elif not is_postgresql(url):
        raise _scheme_error(url)


def store_is_shared(url: str) -> bool:
    """Whether several processes may work on the store at ``url`` at once: a database
    server's (several hub instances), not a file."""
    return is_postgresql(url)


# a table of each service's SQLite store, there since its first release and not the other's
_SQLITE_MARKS = {"hub": "deliveries", "node": "agencies"}


async def held_services(url: str) -> frozenset[str]:
    """Whose stores ("hub", "node") the store at ``url`` holds, found without making or
    changing anything: none for an SQLite file not there or an empty database. Opening
    a store makes its tables wherever it is pointed, a mistyped URL's too."""
    if url.startswith(SQLITE):
        from edoc.store.sqlite.database import table_names

        tables = await asyncio.to_thread(table_names, _sqlite_path(url))
        return frozenset(whose for whose, mark in _SQLITE_MARKS.items() if mark in tables)
    if is_postgresql(url):
        from edoc.store.postgres.database import components

        return await components(url)
    raise _scheme_error(url)


def shown(url: str) -> str:
    """The store at ``url`` as an error names it: its file, or its URL without password."""
    path = sqlite_file(url)
    return str(path) if path is not None else without_password(url)


async def refuse_unless_held(url: str, whose: str, making: str, *, new: bool = True) -> None:
    """Refuse (UnknownStore) the store at ``url`` for ``whose`` service ("hub", "node")
    before anything is made, unless it holds that service's tables (another's too: an
    older edoc made such stores) or, with ``new``, none at all (opening it makes them).
    Opened, another service's store would get ``whose`` tables beside its own (SQLite)
    or fail on a table of both names (PostgreSQL: StorageError, a fault). ``making``
    tells the command's user what makes ``whose`` store."""
    held = await held_services(url)
    if whose in held or (new and not held):
        return
    holding = f" (it holds a {' and a '.join(sorted(held))} store)" if held else ""
    raise errors.UnknownStore(
        f"no {whose} store at {shown(url)}{holding}: {making} (check --store and --data-dir)"
    )


async def open_hub_store(url: str) -> HubStore:
    """The hub's store at ``url``, opened (close it when done)."""
    if url.startswith(SQLITE):
        from edoc.store.sqlite.hub import SqliteHubStore

        store = SqliteHubStore(_sqlite_path(url))
        await store.open()
        return store
    if is_postgresql(url):
        from edoc.store.postgres.hub import PostgresHubStore

        shared = PostgresHubStore(url)
        await shared.open()
        return shared
    raise _scheme_error(url)


async def open_node_store(url: str) -> NodeStore:
    """A node's store at ``url``, opened (close it when done)."""
    if url.startswith(SQLITE):
        from edoc.store.sqlite.node import SqliteNodeStore

        store = SqliteNodeStore(_sqlite_path(url))
        await store.open()
        return store
    if is_postgresql(url):
        from edoc.store.postgres.node import PostgresNodeStore

        shared = PostgresNodeStore(url)
        await shared.open()
        return shared
    raise _scheme_error(url)
