"""A real hub process for integration tests, and a test-side node client for it."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edoc import envelope, services, signing
from edoc.client import Answer, HubClient
from edoc.hub import app as hub_app
from edoc.hub.state import HubConfig
from edoc.keyindex import SigningIdentity
from edoc.model import Organization, ResponseFor, StatusCode, StatusUpdate
from edoc.wire import DeliveryNotice
from tests.support.pki import Ca, unsigned_root, wire

EDOC = str(Path(sys.executable).parent / "edoc")
HUB_ORG = "000.00.00.G22"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class HubProcess:
    data_dir: Path
    keys_dir: Path
    options: tuple[str, ...] = ()
    tls: bool = False
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            EDOC,
            "serve",
            "hub",
            "--data-dir",
            str(self.data_dir),
            "--keys-dir",
            str(self.keys_dir),
            "--port",
            str(self.port),
            *self.options,
            *(() if self.tls else ("--insecure-http",)),
        ]

    def start(self) -> HubProcess:
        command = self.command()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.data_dir / "hub.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log)
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        """As long as the hub makes progress (a loaded machine starts it slowly); the error
        shows the end of its log."""
        context = ssl.create_default_context(cafile=str(self.keys_dir / "ca" / "root.pem"))
        context.load_verify_locations(cafile=str(self.keys_dir / "ca" / "issuing.pem"))
        assert self.process is not None
        hub = services.Service("hub", self.url, self.process, self.data_dir / "hub.log")
        try:
            services.wait_healthy([hub], context if self.tls else None)
        except BaseException:
            self.stop(kill=True)
            raise

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        self.process.wait(timeout=20)
        self.process = None

    def add_node(self, root: str, token: str | None = None, replace: bool = False) -> str:
        """Let node ``root`` in, as `edoc hub add-node [--token T] [--replace]` does
        (tests/store/test_open.py runs that command); here in a thread of this process: a
        CLI start per node cost more."""
        assert "--store" not in self.options, "a hub on another store: use the command"
        token = token or secrets.token_urlsafe(32)
        config = HubConfig(data_dir=self.data_dir, keys_dir=self.keys_dir)
        adding = hub_app.add_node(config, root, token, replace=replace)
        with ThreadPoolExecutor(1) as thread:  # callers may be inside a running loop
            thread.submit(asyncio.run, adding).result()
        return token


class NodeClient(HubClient):
    """What a provincial node does with the hub, driven by the test: the typed client,
    plus the raw post a test looks at refusals with."""

    def __init__(
        self, hub: HubProcess, token: str, ssl_context: ssl.SSLContext | bool = True
    ) -> None:
        super().__init__(hub.url, token, ssl_context)

    async def post(self, package: bytes) -> Answer:
        # a BytesIO: aiohttp warns of a large body given as bytes
        return await self.request("POST", "/api/v1/packages", data=io.BytesIO(package))

    async def fetch(self, delivery_id: int) -> bytes:
        package: bytes = await self._ok("GET", f"/api/v1/deliveries/{delivery_id}/package")
        return package

    async def ack(self, *delivery_ids: int) -> list[int]:
        """Acknowledge; the ids acknowledged for the first time."""
        return list((await self.acknowledge(list(delivery_ids))).first)

    async def drain(self, wait: float = 0) -> list[DeliveryNotice]:
        """Collect, fetch and acknowledge everything waiting."""
        seen = []
        while items := await self.collect(wait=wait):
            for item in items:
                await self.fetch(item.id)
                await self.ack(item.id)
                seen.append(item)
            wait = 0
        return seen


def hub_ca(path: Path) -> Ca:
    """A CA with the hub's seal and TLS certificate and a few provinces' seals."""
    ca = Ca.create(path)
    ca.keys.issue(HUB_ORG, org_name="Văn phòng Chính phủ")
    ca.keys.issue(HUB_ORG, tls_hosts=("localhost", "127.0.0.1"))
    for org, name in (
        ("000.00.00.H41", "UBND tỉnh Nghệ An"),
        ("000.00.00.H53", "UBND tỉnh Tây Ninh"),
    ):
        ca.keys.issue(org, org_name=name)
    for org in ("000.00.00.H53", "000.00.00.H23"):
        ca.keys.issue(org, tls_hosts=("localhost",))
    return ca


_numbers = iter(range(1, 1_000_000))


def document(
    ca: Ca,
    to: list[str],
    sender: str = "000.00.12.H53",
    seal: SigningIdentity | None = None,
    files: dict[str, bytes] | None = None,
    **changes: Any,
) -> bytes:
    """A fresh signed document package (a new number each time), with ``files`` attached."""
    number = str(next(_numbers) + os.getpid() * 1000)
    changes.setdefault("code", {"number": number, "notation": "UBND-VP"})
    changes.update({"to": to, "from": sender})
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for name, content in (files or {}).items():
            paths.append(Path(folder) / name)
            paths[-1].write_bytes(content)
        attached = envelope.attachments_from_files(paths)
        root = unsigned_root(attached, signed_at=ca.clock(), **changes)
        return wire(signing.sign(root, seal or ca.keys.identity(sender)), attached)


def status(
    ca: Ca, responder: str, about: bytes, code: StatusCode, seal: SigningIdentity | None = None
) -> bytes:
    """A signed status message from ``responder`` about the document package ``about``."""
    doc = envelope.read_package(io.BytesIO(about)).document
    answer = ResponseFor(doc.sender.org_id, str(doc.code), doc.promulgation.date, doc.document_id)
    message = StatusUpdate(
        sender=Organization(responder),
        response_for=answer,
        code=code,
        timestamp=ca.clock().replace(microsecond=0),
        description=f"trạng thái {code.value}",
    )
    root = envelope.build_envelope(envelope.stamp_origin(message, ca.clock()))
    return wire(signing.sign(root, seal or ca.keys.identity(responder)))


def utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
