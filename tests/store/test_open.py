"""Stores are built from a URL: the configuration names the backend and where its data is."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from click.testing import CliRunner

from edoc import errors
from edoc.cli import main
from edoc.cli.failures import EXIT_REFUSED
from edoc.hub.state import HubConfig
from edoc.node.state import NodeConfig
from edoc.store import held_services, open_hub_store, open_node_store, sqlite_url
from edoc.store.sqlite.hub import SqliteHubStore
from edoc.store.sqlite.node import SqliteNodeStore
from edoc.web import token_digest
from tests.store import postgres


async def test_an_sqlite_url_opens_that_file(tmp_path: Path) -> None:
    hub = await open_hub_store(sqlite_url(tmp_path / "a" / "hub.db"))
    node = await open_node_store(sqlite_url(tmp_path / "node.db"))
    try:
        assert isinstance(hub, SqliteHubStore) and hub.path == tmp_path / "a" / "hub.db"
        assert isinstance(node, SqliteNodeStore) and node.path == tmp_path / "node.db"
        assert (tmp_path / "a" / "hub.db").exists() and (tmp_path / "node.db").exists()
    finally:
        await hub.close()
        await node.close()


def test_sqlite_urls_follow_the_usual_form(tmp_path: Path) -> None:
    assert sqlite_url(Path("/srv/edoc/hub.db")) == "sqlite:////srv/edoc/hub.db"  # absolute
    assert sqlite_url(Path("data/hub.db")) == "sqlite:///data/hub.db"  # relative


def test_services_keep_their_data_where_they_always_did(tmp_path: Path) -> None:
    """Without a store URL: the SQLite files in the data folder, as before URLs."""
    hub = HubConfig(data_dir=tmp_path / "hub", keys_dir=tmp_path / "keys")
    node = NodeConfig("H53", tmp_path / "node", tmp_path / "keys", hub_url="", hub_token="")
    assert hub.store == sqlite_url(tmp_path / "hub" / "hub.sqlite")
    assert node.store == sqlite_url(tmp_path / "node" / "node.sqlite")
    elsewhere = sqlite_url(tmp_path / "elsewhere.db")
    assert HubConfig(tmp_path, tmp_path, store_url=elsewhere).store == elsewhere


@pytest.mark.parametrize(
    "url",
    [
        "mongodb://edoc:s3cret@db.example/edoc",  # not a backend of this edoc
        "mysql://edoc:s3cret@db/edoc",
        "/var/lib/edoc/hub.sqlite",  # a path is not a URL
        "sqlite://hub.sqlite",  # two slashes: no file named
        "sqlite:///",
    ],
)
async def test_a_url_naming_no_store_is_a_configuration_error(url: str) -> None:
    for open_store in (open_hub_store, open_node_store):
        with pytest.raises(errors.UnknownStore) as refused:
            await open_store(url)
        assert refused.value.code == "EDOC-STORE-002"
        assert "s3cret" not in str(refused.value)  # a URL's password is not repeated


async def _make_hub_store(url: str) -> None:
    await (await open_hub_store(url)).close()


async def _node_for(url: str, token: str) -> str | None:
    store = await open_hub_store(url)
    try:
        return await store.node_for_token(token_digest(token))
    finally:
        await store.close()


def test_the_commands_that_build_a_store_take_its_url(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "elsewhere" / "hub.db")
    asyncio.run(_make_hub_store(url))  # as `edoc serve hub --store URL` makes it
    runner = CliRunner()
    added = runner.invoke(
        main,
        ["hub", "add-node", "H53", "--data-dir", str(tmp_path / "hub"), "--store", url],
        catch_exceptions=False,
    )
    assert added.exit_code == 0, added.output
    assert asyncio.run(_node_for(url, added.stdout.strip())) == "H53"
    assert not (tmp_path / "hub" / "hub.sqlite").exists()

    refused = runner.invoke(
        main,
        ["hub", "add-node", "H53", "--data-dir", str(tmp_path), "--store", "pg://u:s3cret@db"],
        catch_exceptions=False,
    )
    assert refused.exit_code == EXIT_REFUSED
    assert "error EDOC-STORE-002" in refused.stderr and "s3cret" not in refused.stderr


@pytest.fixture
def database() -> Iterator[str]:
    yield from postgres.fresh_database("away")


async def test_whose_store_a_database_is_waits_for_a_server_away_as_opening_it_does(
    database: str,
) -> None:
    """The check `edoc serve hub` makes before opening its store gave up at once while the
    database let no one in (a server restarting): a hub restarted then exited (exit 3),
    where opening the store waits for it."""
    await (await open_hub_store(database)).close()
    letting_in = f'ALTER DATABASE "{database.rpartition("/")[2]}" ALLOW_CONNECTIONS'
    await _on_server(f"{letting_in} false")
    returning = asyncio.create_task(_on_server(f"{letting_in} true", after=2.0))
    try:
        assert await held_services(database) == {"hub"}
    finally:
        await returning


async def _on_server(statement: str, after: float = 0.0) -> None:
    await asyncio.sleep(after)
    conn = await asyncpg.connect(postgres.SERVER)  # from outside the database it changes
    try:
        await conn.execute(statement)
    finally:
        await conn.close()
