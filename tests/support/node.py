"""One node in-process (aiohttp's test server) in front of a fake hub, for the agency API's
door: what it accepts and refuses needs no real processes (tests/support/network.py has
those, for what travels)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from edoc.client import AgencyClient
from edoc.client import Answer as Reply
from edoc.hub import directory
from edoc.hub.state import HUB_ORG_ID
from edoc.keystore import KeyStore
from edoc.node import app as node_app
from edoc.node.addressbook import AddressBook
from edoc.node.state import NodeConfig
from tests.support.pki import SENDER, Ca

TOKEN = "agency-token-of-the-sender"


@dataclass
class FakeHub:
    """The hub as a node sees it: a signed address book (None: the hub cannot give one)
    and one answer to every package."""

    keys: KeyStore
    book: bytes | None = None
    package_answer: tuple[int, dict[str, Any]] = (
        503,
        {"error": {"code": "EDOC-HUB-004", "message": "busy"}},
    )
    directory_requests: int = 0
    directory_unchanged: int = 0  # of those, answered 304: the node held the book
    packages: list[bytes] = field(default_factory=list)
    registrations: list[Any] = field(default_factory=list)  # each POST /directory's body

    def signed_book(
        self,
        *agencies: str,
        version: int = 1,
        issued: dt.datetime | None = None,
        seal: str = HUB_ORG_ID,
    ) -> bytes:
        """Every province's and ministry's level-1 id, and ``agencies`` as their nodes
        registered them, signed with ``seal`` (the hub's unless told)."""
        entries = directory.seed_entries()
        for org in agencies:
            entries += directory.registration(org[-3:], [{"org_id": org, "name": org}])
        now = issued or dt.datetime.now(dt.UTC)
        return directory.signed_xml(version, entries, now, self.keys.identity(seal))

    async def _directory(self, request: web.Request) -> web.Response:
        self.directory_requests += 1
        if self.book is None:
            return web.json_response({"error": {"code": "EDOC-HUB-000", "message": ""}}, status=503)
        etag = f'"{hashlib.sha256(self.book).hexdigest()}"'  # the real hub's are shorter
        if request.headers.get("If-None-Match") == etag:
            self.directory_unchanged += 1
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=self.book, content_type="application/xml", headers={"ETag": etag})

    async def _register(self, request: web.Request) -> web.Response:
        self.registrations.append(await request.json())
        return web.json_response({"version": 1, "registered": 1})

    async def _package(self, request: web.Request) -> web.Response:
        self.packages.append(await request.read())
        status, body = self.package_answer
        return web.json_response(body, status=status)

    async def _deliveries(self, _request: web.Request) -> web.Response:
        await asyncio.sleep(0.5)
        return web.json_response({"deliveries": []})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v1/directory", self._directory)
        app.router.add_post("/api/v1/directory", self._register)
        app.router.add_post("/api/v1/packages", self._package)
        app.router.add_get("/api/v1/deliveries", self._deliveries)
        return app


@dataclass
class Door:
    """The sender's node, started and stopped at will on the same data (a restart)."""

    hub: FakeHub
    config: NodeConfig

    @contextlib.asynccontextmanager
    async def node(self, with_book: bool = True) -> AsyncIterator[Node]:
        """The node, running; with ``with_book``, once it holds an address book."""
        async with TestClient(TestServer(node_app.create_app(self.config))) as client:
            node = Node(client)
            if with_book:
                await node.until(lambda: node.book.current() is not None)
            yield node


class Node(AgencyClient):
    """The node under test, through the agency's typed client, its address book at hand."""

    def __init__(self, client: TestClient[web.Request, web.Application]) -> None:
        super().__init__(str(client.make_url("")), TOKEN)
        self.client = client

    @property
    def book(self) -> AddressBook:
        return self.client.app[node_app.ADDRESS_BOOK]

    async def until(self, condition: Any, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.02)

    async def raw(self, method: str, path: str, **options: Any) -> Reply:
        """A request the typed client would not make (no body at all, another media type)."""
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with self.client.request(method, path, headers=headers, **options) as response:
            raw = await response.read()
            return Reply(response.status, json.loads(raw), dict(response.headers))


@contextlib.asynccontextmanager
async def door(tmp_path: Path, serving: bool = True) -> AsyncIterator[Door]:
    """A fresh CA (the sender's and the hub's seals), a fake hub serving, and the
    configuration of the sender's node (Tây Ninh, H53) with the sender's token (with
    ``serving``; else a store of no agency)."""
    ca = Ca.create(tmp_path / "keys")
    ca.keys.issue(HUB_ORG_ID, org_name="Văn phòng Chính phủ")
    hub = FakeHub(ca.keys)
    async with TestServer(hub.app()) as server:
        config = NodeConfig(
            province="H53",
            data_dir=tmp_path / "node",
            keys_dir=tmp_path / "keys",
            hub_url=str(server.make_url("")),
            hub_token="hub-token",
            hub_tls=False,
            retry_base=0.05,
            retry_cap=0.2,
            workers=1,
        )
        if serving:
            await node_app.add_agency(config, SENDER, "Sở Thông tin và Truyền thông", TOKEN)
        yield Door(hub, config)
