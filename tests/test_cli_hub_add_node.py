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


def _node_for(hub_dir: Path, token: str) -> str | None:
    async def ask() -> str | None:
        store = await open_hub_store(sqlite_url(hub_dir / "hub.sqlite"))
        try:
            return await store.node_for_token(token_digest(token))
        finally:
            await store.close()

    return asyncio.run(ask())


def test_a_connected_node_keeps_its_token_unless_replaced(tmp_path: Path) -> None:
    first = _add_node(tmp_path)
    assert first.exit_code == 0, first.output
    token = first.stdout.strip()

    again = _add_node(tmp_path)
    assert again.exit_code == EXIT_REFUSED, again.output
    assert again.stdout == ""  # no token printed that the hub does not hold
    assert again.stderr.startswith("error EDOC-HUB-008: node H53 is already connected")
    assert "--replace" in again.stderr
    assert _node_for(tmp_path, token) == "H53"  # the running node still gets in

    same = _add_node(tmp_path, "--token", token)  # its own token again: no change
    assert (same.exit_code, same.stdout.strip()) == (0, token)

    replaced = _add_node(tmp_path, "--replace")
    assert replaced.exit_code == 0, replaced.output
    assert _node_for(tmp_path, replaced.stdout.strip()) == "H53"
    assert _node_for(tmp_path, token) is None


def test_another_nodes_token_is_refused_by_name(tmp_path: Path) -> None:
    assert _add_node(tmp_path, "--token", "shared").exit_code == 0
    for replace in ((), ("--replace",)):
        refused = _add_node(tmp_path, "--token", "shared", *replace, node="H34")
        assert refused.exit_code == EXIT_REFUSED, refused.output
        assert refused.stderr == (
            "error EDOC-HUB-008: that token is node H53's; give H34 another (or none: one is"
            " made)\n"
        )
    assert _node_for(tmp_path, "shared") == "H53"


def test_a_token_taken_by_another_node_meanwhile_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two add-node at once with one token: both asked whose it was before either had
    added it, and the second failed on the store's UNIQUE with a traceback."""
    assert _add_node(tmp_path, "--token", "shared", node="H34").exit_code == 0
    asked = SqliteHubStore.node_for_token
    answers: list[str | None] = [None]  # the first question, asked before H34's add

    async def before_the_other(store: SqliteHubStore, digest: str) -> str | None:
        return answers.pop() if answers else await asked(store, digest)

    monkeypatch.setattr(SqliteHubStore, "node_for_token", before_the_other)
    for replace in ((), ("--replace",)):
        answers[:] = [None]
        refused = _add_node(tmp_path, "--token", "shared", *replace)
        assert refused.exit_code == EXIT_REFUSED, refused.output
        assert refused.stderr == (
            "error EDOC-HUB-008: that token is node H34's; give H53 another (or none: one is"
            " made)\n"
        )
    assert _node_for(tmp_path, "shared") == "H34"
