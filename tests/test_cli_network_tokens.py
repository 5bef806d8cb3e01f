"""A token the operator gives by hand to a service of an `edoc up` network (`edoc hub
add-node --replace`, `edoc agency add --replace`) is written into its network.json, the
one place its tokens are kept in the clear. `edoc up` gives the stores network.json's
tokens at every start: the next start put the old token back, locking out the node or
agency given the new one, and network.json went on telling the old one."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from edoc import atomic, launcher, network, services
from edoc.cli import main
from edoc.cli.failures import EXIT_SYSTEM
from edoc.store import open_hub_store, open_node_store, sqlite_url
from edoc.web import token_digest
from tests.support.hub import EDOC


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


def test_tokens_given_at_once_are_all_kept(tmp_path: Path) -> None:
    """Each command finds its entry before it changes its store and writes it after: two
    at once, as interleaved here, each saved the network.json it had read before, and the
    one saved last undid the other's token (`edoc up` would give the old one back)."""
    data = tmp_path / "net"
    _up(data)
    agency = _spec(data)["nodes"][0]["agencies"][1]["org_id"]
    for_node = network.node_token_entry(data / "hub", None, "H53")
    for_agency = network.agency_token_entry(data / "nodes" / "H53", None, agency)
    assert for_node is not None and for_agency is not None
    assert for_node.record("the node's new token")
    assert for_agency.record("the agency's new token")
    after = _spec(data)["nodes"][0]
    assert after["hub_token"] == "the node's new token"
    assert after["agencies"][1]["token"] == "the agency's new token"


def test_a_start_moving_the_network_keeps_a_token_given_meanwhile(tmp_path: Path) -> None:
    """`edoc up --base-port` reads network.json, then saves it moved: a token written by
    hand in between was undone."""
    data = tmp_path / "net"
    _up(data)
    read_by_up = network.planned(data)
    for_node = network.node_token_entry(data / "hub", None, "H53")
    assert read_by_up is not None and for_node is not None
    assert for_node.record("the node's new token")
    network.move(read_by_up, 21300)
    after = _spec(data)
    assert (after["hub"]["port"], after["nodes"][0]["port"]) == (21300, 21301)
    assert after["nodes"][0]["hub_token"] == "the node's new token"
    assert read_by_up.spec == after  # what `edoc up` goes on with


def test_a_token_command_waits_for_another_writer_of_network_json(tmp_path: Path) -> None:
    """The lock that every writer of network.json takes, across processes: a command
    giving a token changes its store, then waits for the lock before it writes there."""
    data = tmp_path / "net"
    _up(data)
    token = "a token given while another process changes network.json"
    command = [EDOC, "hub", "add-node", "H53", "--data-dir", str(data / "hub"), "--token", token]
    with (data / network.LOCK_NAME).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        given = subprocess.Popen(
            [*command, "--replace"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            _wait_given(data, token, given)
            time.sleep(0.5)
            assert given.poll() is None  # waiting for the lock, network.json as it was
            assert _spec(data)["nodes"][0]["hub_token"] != token
        except BaseException:
            given.kill()
            raise
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            out, err = given.communicate(timeout=60)
    assert (given.returncode, out.strip()) == (0, token), err
    assert _spec(data)["nodes"][0]["hub_token"] == token


def _wait_given(data: Path, token: str, command: subprocess.Popen[str]) -> None:
    """Until the hub's store holds ``token`` for H53, as ``command`` gives it."""
    deadline = time.monotonic() + 60
    while asyncio.run(_holders(data, [token])) != [("H53", None)]:
        assert command.poll() is None, "the command ended without giving the token"
        assert time.monotonic() < deadline, "the command did not give the token"
        time.sleep(0.1)


def test_a_token_network_json_cannot_take_is_still_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store holds the new token before network.json is written: a failed write must
    not hide the token (the node or agency given it would be locked out, its old token
    refused), and must not pass unsaid (the next start gives the old one back)."""
    data = tmp_path / "net"
    _up(data)
    before = (data / "network.json").read_bytes()

    def disk_full(path: Path, data: bytes, mode: int = 0o644) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(atomic, "write_bytes", disk_full)
    hub = CliRunner().invoke(
        main, ["hub", "add-node", "H53", "--data-dir", str(data / "hub"), "--replace"]
    )
    token = hub.stdout.strip()
    assert hub.exit_code == EXIT_SYSTEM, hub.output
    assert asyncio.run(_holders(data, [token])) == [("H53", None)]
    assert (data / "network.json").read_bytes() == before
    assert hub.stderr.startswith("error EDOC-SYS-001: ")
    assert f"{data / 'network.json'} could not be updated" in hub.stderr
    assert "no space left on device" in hub.stderr and "--replace" in hub.stderr
