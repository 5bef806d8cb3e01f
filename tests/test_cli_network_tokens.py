"""A token the operator gives by hand to a service of an `edoc up` network (`edoc hub
add-node --replace`, `edoc agency add --replace`) is written into its network.json, the
one place its tokens are kept in the clear. `edoc up` gives the stores network.json's
tokens at every start: the next start put the old token back, locking out the node or
agency given the new one, and network.json went on telling the old one."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from edoc import launcher, services
from edoc.cli import main
from edoc.store import open_hub_store, open_node_store, sqlite_url
from edoc.web import token_digest


@pytest.fixture(autouse=True)
def nothing_served(monkeypatch: pytest.MonkeyPatch) -> None:
    """`edoc up` provisions and registers the tokens as it does; then it is stopped before
    it starts a service (as by a Ctrl-C during the start)."""

    def stopped(*_: Any, **__: Any) -> None:
        raise services.StopRequested

    monkeypatch.setattr(launcher, "start", stopped)


def _edoc(*args: str | Path) -> Result:
    result = CliRunner().invoke(main, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result


def _up(data: Path) -> None:
    _edoc("up", "--data-dir", data, "--provinces", "H53", "--insecure-http")


def _spec(data: Path) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((data / "network.json").read_text())
    return spec


async def _holders(data: Path, tokens: list[str]) -> list[tuple[str | None, str | None]]:
    """Whom the hub's and H53's node's stores let in with each of ``tokens``."""
    hub = await open_hub_store(sqlite_url(data / "hub" / "hub.sqlite"))
    node = await open_node_store(sqlite_url(data / "nodes" / "H53" / "node.sqlite"))
    try:
        return [
            (
                await hub.node_for_token(token_digest(t)),
                await node.agency_for_token(token_digest(t)),
            )
            for t in tokens
        ]
    finally:
        await hub.close()
        await node.close()


def test_a_token_replaced_by_hand_is_the_one_the_next_start_gives(tmp_path: Path) -> None:
    data = tmp_path / "net"
    _up(data)
    before = _spec(data)["nodes"][0]
    agency = before["agencies"][1]["org_id"]

    hub = _edoc("hub", "add-node", "H53", "--data-dir", data / "hub", "--replace")
    node_token = hub.stdout.strip()
    assert str(data / "network.json") in hub.stderr
    given = _edoc(
        *("agency", "add", agency, "--data-dir", data / "nodes" / "H53"),
        *("--keys-dir", data / "keys", "--replace"),
    )
    agency_token = given.stdout.strip()

    after = _spec(data)["nodes"][0]
    assert after["hub_token"] == node_token
    assert after["agencies"][1]["token"] == agency_token
    assert after["agencies"][0] == before["agencies"][0]  # the others' as they were
    assert (data / "network.json").stat().st_mode & 0o777 == 0o600  # it holds tokens

    _up(data)  # started again: network.json's tokens are given to the stores again
    old = [before["hub_token"], before["agencies"][1]["token"]]
    assert asyncio.run(_holders(data, [node_token, agency_token, *old])) == [
        ("H53", None),
        (None, agency),
        (None, None),
        (None, None),
    ]


def test_a_store_other_than_the_networks_leaves_network_json_as_it_is(tmp_path: Path) -> None:
    """A hub on another store, whose folder is the network's: not the network's hub."""
    data = tmp_path / "net"
    _up(data)
    before = (data / "network.json").read_bytes()
    elsewhere = sqlite_url(tmp_path / "other" / "hub.sqlite")

    async def make() -> None:
        await (await open_hub_store(elsewhere)).close()

    asyncio.run(make())
    hub: list[str | Path] = ["hub", "add-node", "H53", "--data-dir", data / "hub"]
    _edoc(*hub, "--store", elsewhere, "--replace")
    assert (data / "network.json").read_bytes() == before
    _edoc(*hub, "--token", _spec(data)["nodes"][0]["hub_token"])  # the token it says
    assert (data / "network.json").read_bytes() == before
