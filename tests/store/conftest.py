"""The stores under test: every contract test runs once per backend.

A backend is a name (the test id) and how to make the URL of a fresh, empty store for one
test. PostgreSQL joins as one more entry of BACKENDS.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from edoc.store import open_hub_store, open_node_store, sqlite_url
from edoc.store.hub import HubStore
from edoc.store.node import NodeStore

# backend name → (folder for this test, "hub" | "node") → URL of a new, empty store
BACKENDS: dict[str, Callable[[Path, str], str]] = {
    "sqlite": lambda folder, service: sqlite_url(folder / f"{service}.sqlite"),
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def hub_store(backend: str, tmp_path: Path) -> AsyncIterator[HubStore]:
    store = await open_hub_store(BACKENDS[backend](tmp_path, "hub"))
    yield store
    await store.close()


@pytest.fixture
async def node_store(backend: str, tmp_path: Path) -> AsyncIterator[NodeStore]:
    store = await open_node_store(BACKENDS[backend](tmp_path, "node"))
    yield store
    await store.close()
