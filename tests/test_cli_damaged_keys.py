"""A damaged file of the keys folder is the operator's to restore: every command that reads
it says which (EDOC-KEY-000, a private key EDOC-KEY-004) and exits 1, as for a missing CA.
It exited 3, as a fault of edoc, in every command (KeyStoreError answers 500 in a
service); `serve` with TLS said OpenSSL's "[X509] PEM lib" as the system's EDOC-SYS-001
(exit 4) naming no file; `edoc up` said a hub that refused its damaged key as "hub exited
with 1" (EDOC-000, exit 3)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from edoc import network, pki
from edoc.cli import main
from edoc.cli.failures import EXIT_REFUSED
from edoc.hub.state import HUB_ORG_ID
from edoc.keystore import KeyStore
from tests.support.hub import free_port

EDOC = str(Path(sys.executable).parent / "edoc")
AGENCY = "000.00.07.H53"


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A network of one node as `edoc up` leaves it: keys, stores, network.json."""
    data = tmp_path_factory.mktemp("damaged") / "data"
    net = network.plan(data, ["H53"], network.random_base_port(), tls=True, agencies=1)
    network.provision(net)
    network.register_tokens(net)
    return data


@pytest.fixture
def data(planned: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(planned, copy)
    return copy


def _truncate(path: Path) -> Path:
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    return path


def _not_json(path: Path) -> Path:
    path.write_text("not json{")
    return path


# what is damaged (relative to the keys folder), how, and what the error says of it
DAMAGES: dict[str, tuple[str, Callable[[Path], Path], str]] = {
    "index not JSON": ("index.json", _not_json, "is damaged (not the key index edoc writes"),
    "CRL truncated": ("ca/crl.pem", _truncate, "is damaged (it does not read as PEM)"),
    "root truncated": ("ca/root.pem", _truncate, "is damaged (it does not read as PEM)"),
}


COMMANDS = ("keys list", "keys issue", "keys rotate", "keys revoke", "agency add", "stats")
SERVICES = ("serve hub", "serve node", "up")


def _commands(data: Path) -> dict[str, list[str]]:
    keys, node = str(data / "keys"), str(data / "nodes" / "H53")
    return {
        "keys list": ["keys", "list", "--keys-dir", keys],
        "keys issue": ["keys", "issue", "000.00.09.H53", "--name", "X", "--keys-dir", keys],
        "keys rotate": ["keys", "rotate", AGENCY, "--keys-dir", keys],
        "keys revoke": ["keys", "revoke", AGENCY, "--reason", "keyCompromise", "--keys-dir", keys],
        "agency add": ["agency", "add", "000.00.09.H53", "--data-dir", node, "--keys-dir", keys],
        "stats": ["stats", "--hub", f"https://127.0.0.1:{free_port()}", "--keys-dir", keys],
    }


def _services(data: Path) -> dict[str, list[str]]:
    """Commands that serve (or start what serves): run as their own processes."""
    keys = ["--keys-dir", str(data / "keys")]
    hub = f"https://127.0.0.1:{free_port()}"
    return {
        "serve hub": ["serve", "hub", "--data-dir", str(data / "hub"), *keys, *_port()],
        "serve node": [
            *("serve", "node", "--province", "H53", "--data-dir", str(data / "nodes" / "H53")),
            *(*keys, *_port(), "--hub", hub, "--hub-token", "t"),
        ],
        "up": ["up", "--data-dir", str(data), "--base-port", str(network.random_base_port())],
    }


def _port() -> list[str]:
    return ["--port", str(free_port())]


def _last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("damage", sorted(DAMAGES))
@pytest.mark.parametrize("command", COMMANDS)
def test_a_command_names_the_damaged_file_and_exits_1(
    data: Path, damage: str, command: str
) -> None:
    file, spoil, said = DAMAGES[damage]
    damaged = spoil(data / "keys" / file)
    result = CliRunner().invoke(main, _commands(data)[command])
    assert result.exit_code == EXIT_REFUSED, result.output
    assert _last_line(result.stderr).startswith(f"error EDOC-KEY-000: {damaged} {said}")


@pytest.mark.parametrize("damage", sorted(DAMAGES))
@pytest.mark.parametrize("command", SERVICES)
def test_a_service_names_the_damaged_file_and_exits_1(
    data: Path, damage: str, command: str
) -> None:
    file, spoil, said = DAMAGES[damage]
    damaged = spoil(data / "keys" / file)
    done = subprocess.run(
        [EDOC, *_services(data)[command]], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == EXIT_REFUSED, done.stderr
    assert _last_line(done.stderr).startswith(f"error EDOC-KEY-000: {damaged} {said}")


def test_a_hubs_truncated_tls_chain_is_named(data: Path) -> None:
    """The certificate reads (cryptography takes the first PEM block), the chain after it
    not: OpenSSL's refusal was EDOC-SYS-001, exit 4, naming no file."""
    keys = KeyStore(data / "keys")
    chain = _truncate(keys.cert_path(keys.current(HUB_ORG_ID, kind=pki.CertKind.TLS).serial))
    done = subprocess.run(
        [EDOC, *_services(data)["serve hub"]], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == EXIT_REFUSED, done.stderr
    assert _last_line(done.stderr).startswith(f"error EDOC-KEY-000: {chain} is damaged")


def test_up_says_the_damaged_key_its_hub_refused(data: Path) -> None:
    """The hub reads its seal as it starts; `edoc up` said only that it exited with 1."""
    keys = KeyStore(data / "keys")
    key = _truncate(keys.key_path(keys.current(HUB_ORG_ID).serial))
    done = subprocess.run(
        [EDOC, *_services(data)["up"]], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == EXIT_REFUSED, done.stderr
    line = _last_line(done.stderr)
    assert line.startswith(f"error EDOC-KEY-004: hub exited: {key}: the private key of"), line
    assert "does not read" in line and str(data / "logs" / "hub.log") in line
