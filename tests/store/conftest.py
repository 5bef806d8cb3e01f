"""The stores under test: every contract test runs once per backend.

A backend is a name (the test id) and how to find the URL of an empty store for one test:
SQLite, a new file in the test's folder; PostgreSQL, this run's database for the service
(created once per run by tests/store/postgres.py), its tables emptied before each test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from edoc.store import open_hub_store, open_node_store, sqlite_url
from edoc.store.hub import HubStore
from edoc.store.node import NodeStore
from tests.store import postgres


def _sqlite(request: pytest.FixtureRequest, folder: Path, service: str) -> str:
    return sqlite_url(folder / f"{service}.sqlite")


def _postgresql(request: pytest.FixtureRequest, folder: Path, service: str) -> str:
    run: dict[str, str] = request.getfixturevalue("postgres_databases")
    return run[service]


# backend name → (the test's request, its folder, "hub" | "node") → URL of its store
BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path, str], str]] = {
    "sqlite": _sqlite,
    "postgresql": _postgresql,
}


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[dict[str, str]]:
    """This run's databases, one per service (their tables have the same names)."""
    yield from postgres.databases("hub", "node")


@pytest.fixture
def fresh() -> Iterator[str]:
    """An empty PostgreSQL database of this test's own (its URL)."""
    yield from postgres.fresh_database("fresh")


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def store_urls(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The URLs of this test's stores, by service ("hub" | "node"); found here, before
    the test's event loop runs (the run's databases are made with one of their own)."""
    return {service: BACKENDS[backend](request, tmp_path, service) for service in ("hub", "node")}


async def _emptied(backend: str, url: str) -> None:
    if backend == "postgresql":  # one database per run: what earlier tests left goes
        await postgres.empty(url)


@pytest.fixture
async def hub_store(backend: str, store_urls: dict[str, str]) -> AsyncIterator[HubStore]:
    url = store_urls["hub"]
    store = await open_hub_store(url)  # the tables exist once it is open
    await _emptied(backend, url)
    yield store
    await store.close()


@pytest.fixture
async def node_store(backend: str, store_urls: dict[str, str]) -> AsyncIterator[NodeStore]:
    url = store_urls["node"]
    store = await open_node_store(url)
    await _emptied(backend, url)
    yield store
    await store.close()
