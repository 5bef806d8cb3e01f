"""What the hub offers a node again (its acknowledgement lost, its lease run out) that the
node stored and answered the first time is acknowledged as it is held, not verified
again: its signer's seal revoked in between, the recipient holds the document and
answered 01, and the sender must not hear 02 (refused). A real hub process, the node
in-process before it, and between them a proxy that loses the node's acknowledgements
until the node is stopped (a node killed after storing, before acknowledging)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from edoc.client import AgencyClient
from edoc.model import StatusCode
from edoc.node import app as node_app
from edoc.node.state import NodeConfig, NodeState
from tests.support.hub import HubProcess, NodeClient, document, hub_ca, status
from tests.support.network import metadata
from tests.support.pki import Ca

AGENCY, SENDER = "000.00.12.H53", "000.00.01.H41"  # the node's agency, another province's
AGENCY_TOKEN = "agency-token-of-the-nodes-agency"
ACK = "/api/v1/deliveries/ack"
FORWARDED = ("Authorization", "Content-Type", "X-Request-Id", "X-Edoc-Collector")
HELD = "delivery offered again is held already: acknowledged as before"


@dataclasses.dataclass
class AckLosingProxy:
    """Forwards the node's requests to the hub; while ``losing``, an acknowledgement is
    cut before it reaches the hub (the node sees its connection drop)."""

    upstream: str
    session: aiohttp.ClientSession
    losing: bool = True
    lost: int = 0  # acknowledgements cut
    passed: int = 0  # acknowledgements the hub answered 200

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.path == ACK and self.losing:
            self.lost += 1
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)  # never reaches the node
        async with self.session.request(
            request.method,
            self.upstream + request.path_qs,
            data=body or None,
            headers={k: request.headers[k] for k in FORWARDED if k in request.headers},
        ) as answer:
            payload = await answer.read()
            status, kind = answer.status, answer.headers.get("Content-Type")
        self.passed += request.path == ACK and status == 200
        return web.Response(status=status, body=payload, headers={"Content-Type": kind or ""})


@dataclasses.dataclass
class Exchange:
    """The hub, the sender's province as the test plays it (every delivery it was relayed
    so far, its packages fetched), the proxy and the node's configuration."""

    ca: Ca
    hub: HubProcess
    sender: NodeClient
    proxy: AckLosingProxy
    config: NodeConfig
    relayed: list[tuple[str, str, bytes]] = dataclasses.field(default_factory=list)

    async def to_sender(self) -> list[tuple[str, str, bytes]]:
        """(kind, status code, package) of each delivery relayed to the sender's side."""
        while notices := await self.sender.collect():
            for notice in notices:
                package = notice.package or await self.sender.fetch(notice.id)
                self.relayed.append((notice.kind, notice.status_code or "", package))
                await self.sender.ack(notice.id)
        return self.relayed

    async def statuses(self) -> list[str]:
        return [code for kind, code, _ in await self.to_sender() if kind == "status"]

    @contextlib.asynccontextmanager
    async def node(self) -> AsyncIterator[tuple[AgencyClient, NodeState]]:
        """The node running, registered with the hub: its agency's client, and its state
        (its outbox seen through its store)."""
        async with TestClient(TestServer(node_app.create_app(self.config))) as client:
            agency = AgencyClient(str(client.make_url("")), AGENCY_TOKEN)
            await _until(lambda: _registered(agency))
            yield agency, client.app[node_app.STATE]

    async def offered_again_once_revoked(self) -> list[MutableMapping[str, Any]]:
        """The node stops before any acknowledgement reached the hub, and the sender's seal
        is revoked; the node, started again, is offered the delivery again once its lease
        ran out: the log of that node until the hub heard its acknowledgement and the
        node's outbox is idle (a status it made would have gone)."""
        assert self.proxy.lost > 0 and self.proxy.passed == 0
        self.ca.keys.revoke(SENDER, "keyCompromise")
        self.proxy.losing = False
        with capture_logs() as logs:
            async with self.node() as (_, node):
                await _until(lambda: _true(self.proxy.passed > 0))
                await _until(lambda: _outbox_idle(node))
        return logs


@contextlib.asynccontextmanager
async def _exchange(tmp_path: Path) -> AsyncIterator[Exchange]:
    ca = hub_ca(tmp_path / "keys")
    ca.keys.issue(AGENCY, org_name="Sở Thông tin và Truyền thông tỉnh Tây Ninh")
    ca.keys.issue(SENDER, org_name="Văn phòng UBND tỉnh Nghệ An")
    # a delivery leased and not acknowledged is offered again 1 s later
    hub = HubProcess(tmp_path / "hub", ca.keys.path, options=("--visibility", "1")).start()
    try:
        async with (
            NodeClient(hub, hub.add_node("H41")) as sender,
            aiohttp.ClientSession() as session,
        ):
            await sender.register([{"org_id": SENDER, "name": "Văn phòng UBND tỉnh Nghệ An"}])
            proxy = AckLosingProxy(hub.url, session)
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{path:.*}", proxy.handle)
            async with TestServer(app) as proxied:
                config = NodeConfig(
                    "H53",
                    tmp_path / "node",
                    hub.keys_dir,
                    hub_url=str(proxied.make_url("")).rstrip("/"),
                    hub_token=hub.add_node("H53"),
                    hub_tls=False,
                    retry_base=0.05,
                    retry_cap=0.2,
                    poll_wait=1,
                    workers=1,
                )
                await node_app.add_agency(config, AGENCY, "Sở TTTT", AGENCY_TOKEN)
                yield Exchange(ca, hub, sender, proxy, config)
    finally:
        hub.stop()


async def _until(condition: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.05)


async def _true(value: bool) -> bool:
    return value


async def _registered(agency: AgencyClient) -> bool:
    return bool((await agency.health())["registered"])


async def _holds_one(agency: AgencyClient) -> bool:
    return len(await agency.inbox(AGENCY)) == 1


async def _outbox_idle(node: NodeState) -> bool:
    return not any((await node.store.pending_transfers()).values())


async def _relayed(exchange: Exchange) -> bool:
    return bool(await exchange.to_sender())


async def _heard(exchange: Exchange, codes: list[str]) -> bool:
    return await exchange.statuses() == codes


def _judged(logs: list[MutableMapping[str, Any]]) -> list[str]:
    """What the node said of the delivery offered again: held, or refused."""
    return [e["event"] for e in logs if e["event"] in (HELD, "refused relayed package")]


async def test_a_document_offered_again_after_its_sender_was_revoked_is_acknowledged_as_held(
    tmp_path: Path,
) -> None:
    async with _exchange(tmp_path) as exchange:
        async with exchange.node() as (agency, _):
            await exchange.sender.post_package(document(exchange.ca, [AGENCY], SENDER))
            await _until(lambda: _holds_one(agency))
            held = await agency.inbox(AGENCY)
            await _until(lambda: _heard(exchange, ["01"]))  # its 01 reached the sender
            await _until(lambda: _true(exchange.proxy.lost > 0))  # not acknowledged
        logs = await exchange.offered_again_once_revoked()
        async with exchange.node() as (agency, _):
            assert await agency.inbox(AGENCY) == held  # as it was, answered 01 only
        assert await exchange.statuses() == ["01"]  # no 02 (refused) after it
        assert _judged(logs) == [HELD]


async def test_a_status_offered_again_after_its_responder_was_revoked_is_acknowledged_as_held(
    tmp_path: Path,
) -> None:
    """Refused, a status is not answered (no 02 about a status): verified again, it was
    acknowledged as well, but only after a verification, logged as a refusal."""
    async with _exchange(tmp_path) as exchange:
        async with exchange.node() as (agency, _):
            posted = await agency.post_document(metadata(AGENCY, [SENDER]))
            await _until(lambda: _relayed(exchange))
            ((_, _, package),) = exchange.relayed
            await exchange.sender.post_package(
                status(exchange.ca, SENDER, package, StatusCode.ARRIVED)
            )
            await _until(lambda: _answered(agency, posted["id"]))
            answered = await agency.document(posted["id"])
            await _until(lambda: _true(exchange.proxy.lost > 0))
        logs = await exchange.offered_again_once_revoked()
        assert _judged(logs) == [HELD]
        async with exchange.node() as (agency, _):
            assert await agency.document(posted["id"]) == answered


async def _answered(agency: AgencyClient, outgoing_id: int) -> bool:
    (recipient,) = (await agency.document(outgoing_id))["recipients"]
    return bool(recipient["state"] == StatusCode.ARRIVED)
