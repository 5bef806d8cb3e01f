"""`edoc hub add-node`: a node already connected keeps its token unless told to replace it
(a new one locked out the node running with the old, every request EDOC-AUTH-001)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from click.testing import CliRunner, Result

from edoc.cli import main
from edoc.cli.failures import EXIT_REFUSED
from edoc.store import open_hub_store, shown, sqlite_url
from edoc.store.postgres.hub import PostgresHubStore
from edoc.store.sqlite.hub import SqliteHubStore
from edoc.urls import without_password
from edoc.web import token_digest
from tests.store import postgres
from tests.support.stores import made, tables


def _add_node(hub_dir: Path, *options: str, node: str = "H53") -> Result:
    return CliRunner().invoke(main, ["hub", "add-node", node, "--data-dir", str(hub_dir), *options])


@pytest.fixture
def hub_dir(tmp_path: Path) -> Path:
    """A hub's folder with its store, as `edoc serve hub` made it."""
    made("hub", sqlite_url(tmp_path / "hub.sqlite"))
    return tmp_path


def _node_for(hub_dir: Path, token: str) -> str | None:
    async def ask() -> str | None:
        store = await open_hub_store(sqlite_url(hub_dir / "hub.sqlite"))
        try:
            return await store.node_for_token(token_digest(token))
        finally:
            await store.close()

    return asyncio.run(ask())


def test_a_connected_node_keeps_its_token_unless_replaced(hub_dir: Path) -> None:
    first = _add_node(hub_dir)
    assert first.exit_code == 0, first.output
    token = first.stdout.strip()

    again = _add_node(hub_dir)
    assert again.exit_code == EXIT_REFUSED, again.output
    assert again.stdout == ""  # no token printed that the hub does not hold
    assert again.stderr.startswith("error EDOC-HUB-008: node H53 is already connected")
    assert "--replace" in again.stderr
    assert _node_for(hub_dir, token) == "H53"  # the running node still gets in

    same = _add_node(hub_dir, "--token", token)  # its own token again: no change
    assert (same.exit_code, same.stdout.strip()) == (0, token)

    replaced = _add_node(hub_dir, "--replace")
    assert replaced.exit_code == 0, replaced.output
    assert _node_for(hub_dir, replaced.stdout.strip()) == "H53"
    assert _node_for(hub_dir, token) is None


def test_another_nodes_token_is_refused_by_name(hub_dir: Path) -> None:
    assert _add_node(hub_dir, "--token", "shared").exit_code == 0
    for replace in ((), ("--replace",)):
        refused = _add_node(hub_dir, "--token", "shared", *replace, node="H34")
        assert refused.exit_code == EXIT_REFUSED, refused.output
        assert refused.stderr == (
            "error EDOC-HUB-008: that token is node H53's; give H34 another (or none: one is"
            " made)\n"
        )
    assert _node_for(hub_dir, "shared") == "H53"


def test_a_token_taken_by_another_node_meanwhile_is_refused_by_name(
    hub_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two add-node at once with one token: both asked whose it was before either had
    added it, and the second failed on the store's UNIQUE with a traceback."""
    assert _add_node(hub_dir, "--token", "shared", node="H34").exit_code == 0
    asked = SqliteHubStore.node_for_token
    answers: list[str | None] = [None]  # the first question, asked before H34's add

    async def before_the_other(store: SqliteHubStore, digest: str) -> str | None:
        return answers.pop() if answers else await asked(store, digest)

    monkeypatch.setattr(SqliteHubStore, "node_for_token", before_the_other)
    for replace in ((), ("--replace",)):
        answers[:] = [None]
        refused = _add_node(hub_dir, "--token", "shared", *replace)
        assert refused.exit_code == EXIT_REFUSED, refused.output
        assert refused.stderr == (
            "error EDOC-HUB-008: that token is node H34's; give H53 another (or none: one is"
            " made)\n"
        )
    assert _node_for(hub_dir, "shared") == "H34"


@pytest.mark.parametrize("given", ["--data-dir", "--store"])
def test_a_folder_without_a_hub_is_refused_and_left_as_it_was(tmp_path: Path, given: str) -> None:
    """A mistyped --data-dir (or --store) made an empty hub store there, its folders too,
    and printed a token for a hub that would never run there."""
    missing = tmp_path / "hb" / "hub.sqlite"
    store = ("--store", sqlite_url(missing)) if given == "--store" else ()
    refused = _add_node(tmp_path / "hb", *store)
    assert refused.exit_code == EXIT_REFUSED, refused.output
    assert refused.stdout == ""
    assert refused.stderr == (
        f"error EDOC-STORE-002: no hub store at {missing}: `edoc serve hub --data-dir …` makes"
        " one (check --store and --data-dir)\n"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def database() -> Iterator[str]:
    """An empty PostgreSQL database of the test's own (its URL)."""
    yield from postgres.fresh_database("add_node")


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where a store can be made, on each backend: a file not there, an empty database."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "store" / "node.sqlite")
    else:
        yield from postgres.fresh_database("add_node")


def test_a_database_without_a_hub_store_is_refused_and_left_empty(
    database: str, tmp_path: Path
) -> None:
    """Its tables were made there and the node was added: the hub, on its own database,
    never knew it, and the token printed let the node in nowhere."""
    refused = _add_node(tmp_path / "hub", "--store", database)
    assert refused.exit_code == EXIT_REFUSED, refused.output
    assert refused.stdout == ""
    assert refused.stderr == (
        f"error EDOC-STORE-002: no hub store at {without_password(database)}: `edoc serve hub"
        " --data-dir …` makes one (check --store and --data-dir)\n"
    )
    assert tables(database) == set()


def test_a_nodes_store_is_refused_and_left_as_it_was(empty_store: str, tmp_path: Path) -> None:
    """A node's store given for the hub's: the hub's tables were made beside the node's
    (SQLite), or the command failed on a table of both names (PostgreSQL, EDOC-STORE-001)."""
    made("node", empty_store)
    before = tables(empty_store)
    refused = _add_node(tmp_path / "hub", "--store", empty_store)
    assert refused.exit_code == EXIT_REFUSED, refused.output
    assert refused.stdout == ""
    assert refused.stderr.startswith(
        f"error EDOC-STORE-002: no hub store at {shown(empty_store)} (it holds a node store): "
    )
    assert tables(empty_store) == before
    assert not (tmp_path / "hub").exists()


def test_a_hub_store_an_older_edoc_made_is_upgraded_with_its_nodes_kept(
    database: str, tmp_path: Path
) -> None:
    """The hub's own database at an earlier version of its tables: upgraded, as the hub
    upgrades it when it starts (this guards the refusals above, which it passes by)."""
    asyncio.run(_make_first_version(database, {"H34": "first"}))
    added = _add_node(tmp_path / "hub", "--store", database, "--token", "second")
    assert (added.exit_code, added.stdout) == (0, "second\n"), added.output
    assert asyncio.run(_nodes_of(database, "first", "second")) == ["H34", "H53"]
    assert asyncio.run(_hub_version(database)) == len(PostgresHubStore.migrations)


async def _make_first_version(url: str, tokens: dict[str, str]) -> None:
    first = PostgresHubStore(url)
    await first.open(up_to=1)
    try:
        for node, token in tokens.items():
            await first.add_node(node, token_digest(token))
    finally:
        await first.close()


async def _nodes_of(url: str, *tokens: str) -> list[str | None]:
    store = await open_hub_store(url)
    try:
        return [await store.node_for_token(token_digest(token)) for token in tokens]
    finally:
        await store.close()


async def _hub_version(url: str) -> int:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        return int(
            await conn.fetchval("SELECT version FROM schema_version WHERE component = 'hub'")
        )
    finally:
        await conn.close()
