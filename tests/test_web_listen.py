"""A service listens with room for bursts of connections (edoc.web.LISTEN_BACKLOG), on a
port it takes before it makes anything."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edoc import web
from edoc.cli.failures import EXIT_SYSTEM
from edoc.store import open_node_store, sqlite_url
from tests.support.hub import free_port, hub_ca

EDOC = str(Path(sys.executable).parent / "edoc")

SERVICE = """
import sys
from aiohttp import web as aiohttp_web
from edoc import web
web.serve(aiohttp_web.Application(), "127.0.0.1", int(sys.argv[1]), None, "listening")
"""


def _backlog(port: int) -> int | None:
    """The backlog of the socket listening on ``port`` (ss: Send-Q of a listener)."""
    out = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[2]) if out else None


AIOHTTP_BACKLOG = 128  # what aiohttp listens with unless told


def test_a_service_listens_with_the_backlog_a_hub_of_many_nodes_needs() -> None:
    cap = int(Path("/proc/sys/net/core/somaxconn").read_text())  # the kernel caps any at it
    if cap <= AIOHTTP_BACKLOG:
        pytest.skip(f"net.core.somaxconn is {cap}: ours cannot be told from aiohttp's here")
    port = free_port()
    service = subprocess.Popen([sys.executable, "-c", SERVICE, str(port)])
    try:
        deadline = time.monotonic() + 20
        while (backlog := _backlog(port)) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert backlog == min(web.LISTEN_BACKLOG, cap)
    finally:
        service.terminate()
        service.wait(timeout=10)


async def _make_node_store(path: Path) -> None:
    await (await open_node_store(sqlite_url(path))).close()


@pytest.mark.parametrize("service", ["hub", "node"])
def test_a_service_whose_port_is_taken_makes_nothing(tmp_path: Path, service: str) -> None:
    """It made its folders (store, packages, incoming…) first, and only then found the
    port taken; a node had also tidied its folder and talked to its hub."""
    keys = hub_ca(tmp_path / "keys").keys.path
    folder = tmp_path / service
    options = []
    if service == "node":  # its store is made by `edoc agency add`
        asyncio.run(_make_node_store(folder / "node.sqlite"))
        options = ["--province", "H53", "--hub", f"https://127.0.0.1:{free_port()}"]
        options += ["--hub-token", "t"]
    made = sorted(folder.rglob("*"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        where = ["--data-dir", str(folder), "--keys-dir", str(keys), "--port", str(port)]
        done = subprocess.run(
            [EDOC, "serve", service, *where, *options], capture_output=True, text=True, timeout=60
        )
    assert done.returncode == EXIT_SYSTEM, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith(
        f"error EDOC-SYS-003: error while attempting to bind on address ('127.0.0.1', {port}):"
        " address already in use; "
    ), line
    assert sorted(folder.rglob("*")) == made


EVERY_IPV4 = "0.0.0.0"  # noqa: S104 (bound, never listening: what "" is said to be)


def test_an_empty_host_is_every_address_as_asyncio_has_it() -> None:
    """``--host ''`` listened on every address (asyncio's create_server reads "" so, and
    aiohttp handed it on); the service's own binding found no such name."""
    port = free_port()
    sockets = web.bound("", port, reuse_port=False)
    try:
        bound = {listener.getsockname()[:2] for listener in sockets}
    finally:
        for listener in sockets:
            listener.close()
    assert (EVERY_IPV4, port) in bound
    assert bound <= {(EVERY_IPV4, port), ("::", port)}
