"""A node is planned or added only for a province or ministry that exists (the seeds' level-1
bodies, seeds/organizations.csv): H99 was taken as well formed, and a network, a node or a
hub registration made for it, the province of a mistyped code."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from edoc import launcher
from edoc.cli import main
from edoc.cli.failures import EXIT_REFUSED
from edoc.keystore import KeyStore
from edoc.store import open_hub_store, open_node_store, sqlite_url
from tests.support.hub import free_port

EDOC = str(Path(sys.executable).parent / "edoc")
UNKNOWN = "H99"
REFUSED = f"error EDOC-ORG-001: '{UNKNOWN}' is no province or ministry (e.g. H53, G01;"


def _refused(result: Result | subprocess.CompletedProcess[str]) -> None:
    code = result.exit_code if isinstance(result, Result) else result.returncode
    assert code == EXIT_REFUSED, result.stderr
    assert result.stderr.startswith(REFUSED), result.stderr
    assert result.stdout == ""


def test_up_plans_no_network_with_an_unknown_province(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[Any] = []
    monkeypatch.setattr(launcher, "run", lambda *args: started.append(args))
    data = tmp_path / "net"
    _refused(CliRunner().invoke(main, ["up", "--data-dir", str(data), "--provinces", "H53,H99"]))
    assert not data.exists() and started == []


async def _make_stores(hub: Path, node: Path) -> None:
    """A hub's and a node's (of H53) stores, as `edoc serve hub` and `agency add` made them."""
    for opening in (open_hub_store(sqlite_url(hub)), open_node_store(sqlite_url(node))):
        await (await opening).close()


def test_a_hub_lets_no_node_of_an_unknown_province_connect(tmp_path: Path) -> None:
    asyncio.run(_make_stores(tmp_path / "hub" / "hub.sqlite", tmp_path / "node.sqlite"))
    before = (tmp_path / "hub" / "hub.sqlite").read_bytes()
    added = CliRunner().invoke(
        main, ["hub", "add-node", UNKNOWN, "--data-dir", str(tmp_path / "hub"), "--token", "t"]
    )
    _refused(added)
    assert (tmp_path / "hub" / "hub.sqlite").read_bytes() == before


def test_no_node_serves_an_unknown_province(tmp_path: Path) -> None:
    asyncio.run(_make_stores(tmp_path / "hub" / "hub.sqlite", tmp_path / "node" / "node.sqlite"))
    keys = tmp_path / "keys"
    KeyStore(keys).init()
    arguments = ["serve", "node", "--province", UNKNOWN, "--data-dir", str(tmp_path / "node")]
    arguments += ["--keys-dir", str(keys), "--port", str(free_port())]
    arguments += ["--hub", f"http://127.0.0.1:{free_port()}", "--hub-insecure-http"]
    served = subprocess.run(
        [EDOC, *arguments, "--hub-token", "t"], capture_output=True, text=True, timeout=60
    )
    _refused(served)


def test_no_agency_of_an_unknown_province_is_added(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    KeyStore(keys).init()
    issued = KeyStore(keys).records()
    node = tmp_path / "node"
    agency = f"000.00.07.{UNKNOWN}"
    added = CliRunner().invoke(
        main, ["agency", "add", agency, "--data-dir", str(node), "--keys-dir", str(keys)]
    )
    _refused(added)
    assert not node.exists() and KeyStore(keys).records() == issued
