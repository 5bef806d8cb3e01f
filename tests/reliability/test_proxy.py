"""Lost responses and lost acknowledgements between the nodes and the hub.

A proxy sits between both nodes and the hub and loses, deterministically (every
``every``-th of each kind):

* the hub's answer to a package a node posted (the hub took it, the node never hears):
  the node must resend, and the hub answer the resend with its first answer;
* a node's acknowledgement of a delivery, before it reaches the hub (the hub must offer
  it again after the visibility timeout, and the node recognise it), and the hub's answer
  to one it did get;
* the answer to a collection (the hub leased deliveries the node never heard of, with
  the small packages inside);
* a package download (of one too large to come inside the answer), cut halfway.

Why plain HTTP here: the hub↔node link is mutual TLS in :class:`LocalNetwork`, and a proxy
that must pick requests by path (drop this acknowledgement, not that poll) has to read
HTTP. Terminating TLS in the proxy would need the hub's server key and each node's
client key in it, and a proxy per node; the property under test (resends and
redeliveries are recognised, so nothing is lost or doubled) does not depend on the
transport, so the network is planned with ``tls=False`` and the proxy is an aiohttp
reverse proxy.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.reliability.faults import (
    FaultNetwork,
    Load,
    delivered_once,
    fast_and_long,
)
from tests.support.network import eventually

# one package, or several due at once (the node's outbox batches them)
PACKAGE_POSTS = ("/api/v1/packages", "/api/v1/packages/batch")


def inbox_folders(database: Path) -> set[str]:
    """The inbox folders the node's store points to (a small package has none: the
    store keeps it)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT path FROM inbox").fetchall()
    finally:
        connection.close()
    return {Path(row[0]).parent.name for row in rows if row[0]}


# (the collector's name too: a collect answer the proxy loses leaves leases under it)
FORWARDED = ("Authorization", "Content-Type", "X-Request-Id", "X-Edoc-Collector")
ANSWERED = ("Content-Type", "X-Edoc-Resend", "Retry-After")


@dataclass
class LossyProxy:
    upstream: str
    every: int
    seen: Counter[str] = field(default_factory=Counter)
    lost: Counter[str] = field(default_factory=Counter)
    runner: web.AppRunner | None = None
    session: aiohttp.ClientSession | None = None
    url: str = ""

    async def start(self) -> LossyProxy:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        return self

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.runner is not None:
            await self.runner.cleanup()

    @staticmethod
    def kind(request: web.Request) -> str:
        if request.method == "POST" and request.path in PACKAGE_POSTS:
            return "package"
        if request.method == "POST" and request.path == "/api/v1/deliveries/ack":
            return "ack"
        if request.method == "GET" and request.path == "/api/v1/deliveries":
            return "collect"
        if request.method == "GET" and request.path.endswith("/package"):
            return "fetch"
        return "other"

    def lose(self, number: int, what: str, turn: int) -> bool:
        """Whether request ``number`` (of its kind) is the turn to lose ``what``; counts it.
        The request's own number, taken as it came: requests of a kind overlap (a node
        downloads several packages at once), and the count when an answer is back may have
        moved past every turn."""
        if number % self.every != turn % self.every:
            return False
        self.lost[what] += 1
        return True

    @staticmethod
    def cut(request: web.Request) -> web.Response:
        """Close the connection without an answer: the client sees it drop."""
        assert request.transport is not None
        request.transport.close()
        return web.Response(status=500)  # never reaches the client

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert self.session is not None
        kind = self.kind(request)
        self.seen[kind] += 1
        number = self.seen[kind]
        body = await request.read()
        if kind == "ack" and self.lose(number, "acks_lost", 1):
            return self.cut(request)  # the hub never hears the acknowledgement
        async with self.session.request(
            request.method,
            self.upstream + request.path_qs,
            data=body if body else None,
            headers={k: request.headers[k] for k in FORWARDED if k in request.headers},
        ) as answer:
            payload = await answer.read()
            headers = {k: answer.headers[k] for k in ANSWERED if k in answer.headers}
            status = answer.status
        if status < 300 and (
            (kind == "package" and self.lose(number, "package_answers_lost", 1))
            or (kind == "ack" and self.lose(number, "ack_answers_lost", 2))
            or (kind == "collect" and b'"id"' in payload and self.lose(number, "leases_lost", 1))
        ):
            return self.cut(request)  # the hub did it; the node never hears
        if status < 300 and kind == "fetch" and self.lose(number, "downloads_cut", 1):
            response = web.StreamResponse(
                status=status, headers=headers | {"Content-Length": str(len(payload))}
            )
            await response.prepare(request)
            await response.write(payload[: len(payload) // 2])
            self.cut(request)
            return response
        return web.Response(status=status, body=payload, headers=headers)


@dataclass(frozen=True)
class Scale:
    documents: int
    every: int  # lose every n-th of each kind
    deliver_within: float


@pytest.mark.parametrize(
    "scale",
    fast_and_long(
        Scale(documents=30, every=3, deliver_within=60),
        Scale(documents=1000, every=2, deliver_within=600),
    ),
)
async def test_lost_answers_and_acknowledgements_lose_and_double_nothing(
    tmp_path: Path, scale: Scale
) -> None:
    provinces = ["H53", "H34"]
    # a lease lost on the way comes back after 1 s; packages with an attachment of more
    # than a few KB are downloaded, the others come inside the collect answer
    net = FaultNetwork(
        tmp_path / "net",
        provinces,
        tls=False,
        hub_args=("--visibility", "1", "--inline-kb", "16"),
    )
    await asyncio.to_thread(net.provision)
    proxy = await LossyProxy(str(net.spec["hub"]["url"]), scale.every).start()
    net.hub_for_node = dict.fromkeys(provinces, proxy.url)
    try:
        await asyncio.to_thread(net.launch)  # the nodes register through the proxy already
        senders = net.agencies_of("H53") + net.agencies_of("H34")[:1]
        recipients = net.agencies_of("H34") + net.agencies_of("H53")
        load = Load(net, senders, recipients, random.Random(3))
        ledger = await load.run(scale.documents)
        assert not ledger.refused, ledger.refused
        await delivered_once(net, ledger, recipients, scale.deliver_within, figures=proxy.lost)
        for province in provinces:  # redeliveries leave no copies behind
            inbox = net.node_dir(province) / "inbox"

            async def no_orphans(inbox: Path = inbox) -> bool:
                # (a redelivery still under way may hold a folder for a moment)
                found = {p.name for p in inbox.iterdir()}
                return found == inbox_folders(inbox.parent / "node.sqlite")

            await eventually(no_orphans, timeout=10)
        # every kind of loss happened, or the test proved nothing about it
        assert set(proxy.lost) == {
            "acks_lost",
            "package_answers_lost",
            "ack_answers_lost",
            "leases_lost",
            "downloads_cut",
        }, proxy.lost
    finally:
        await asyncio.to_thread(net.stop)
        await proxy.close()
