"""A service listens with room for bursts of connections (edoc.web.LISTEN_BACKLOG)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from edoc import web
from tests.support.hub import free_port

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
