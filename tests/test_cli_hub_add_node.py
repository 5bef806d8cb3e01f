"""`edoc hub add-node`: a node already connected keeps its token unless told to replace it
(a new one locked out the node running with the old, every request EDOC-AUTH-001)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from edoc.cli import main
from edoc.cli.failures import EXIT_REFUSED
from edoc.store import open_hub_store, sqlite_url
from edoc.store.sqlite.hub import SqliteHubStore
from edoc.web import token_digest


def _add_node(hub_dir: Path, *options: str, node: str = "H53") -> Result:
    return CliRunner().invoke(main, ["hub", "add-node", node, "--data-dir", str(hub_dir), *options])


@pytest.fixture
def hub_dir(tmp_path: Path) -> Path:
    """A hub's folder with its store, as `edoc serve hub` made it."""
    asyncio.run(_make_store(sqlite_url(tmp_path / "hub.sqlite")))
    return tmp_path


async def _make_store(url: str) -> None:
    await (await open_hub_store(url)).close()


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
