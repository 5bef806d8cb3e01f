"""A node's dashboard data: the outbox's backlog, transfers the hub refused or that are
retried with the hub's reason, recent documents, and the retry action."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from edoc.dashboard import auth
from tests.dashboard.support import OPERATOR
from tests.support import node as node_support
from tests.support.network import eventually, metadata
from tests.support.node import Node
from tests.support.pki import SENDER

KON_TUM = "000.00.00.H34"
OVERVIEW = "/dashboard/api/overview"
AS_OPERATOR = {"Authorization": f"Bearer {OPERATOR}"}


async def overview(node: Node) -> dict[str, Any]:
    status, data, _ = await node.request("GET", OVERVIEW, headers=AS_OPERATOR)
    assert status == 200, data
    result: dict[str, Any] = data
    return result


async def test_an_agency_token_opens_no_dashboard(tmp_path: Path) -> None:
    async with node_support.door(tmp_path) as door:
        door.config = dataclasses.replace(door.config, operator_token=OPERATOR)
        async with door.node(with_book=False) as node:
            status, body, headers = await node.request("GET", OVERVIEW)  # the agency's token
            assert (status, body["error"]["code"]) == (401, "EDOC-AUTH-003")
            assert headers["X-Content-Type-Options"] == "nosniff"  # a node's dashboard too
            status, body, headers = await node.request(
                "POST", "/dashboard/api/retry", data={"route": "hub"}
            )
            assert (status, body["error"]["code"]) == (401, "EDOC-AUTH-003")
            assert headers["X-Content-Type-Options"] == "nosniff"


@dataclasses.dataclass
class Refused:
    """A node whose one document the hub refused for good, and that document's row."""

    door: node_support.Door
    node: Node
    sent: dict[str, Any]
    row: dict[str, Any]


@contextlib.asynccontextmanager
async def refusing_hub(
    tmp_path: Path, status: int, code: str, message: str
) -> AsyncIterator[tuple[node_support.Door, Node]]:
    """A node, its dashboard open to the operator, before a hub that answers every
    package ``status`` with ``code``."""
    async with node_support.door(tmp_path) as door:
        door.config = dataclasses.replace(door.config, operator_token=OPERATOR)
        door.hub.book = door.hub.signed_book(KON_TUM)
        door.hub.package_answer = (status, {"error": {"code": code, "message": message}})
        async with door.node() as node:
            yield door, node


@contextlib.asynccontextmanager
async def refused_transfer(tmp_path: Path) -> AsyncIterator[Refused]:
    """A node before a hub that refuses (422) the document it is sent, once it failed."""
    refusing = refusing_hub(tmp_path, 422, "EDOC-HUB-001", "not in the address book")
    async with refusing as (door, node):
        status, sent, _ = await node.send(metadata(SENDER, [KON_TUM]))
        assert status == 202, sent

        async def failed() -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = (await overview(node))["troubled"]
            return [r for r in rows if r["state"] == "failed"]

        (row,) = await eventually(failed, timeout=10)
        yield Refused(door, node, sent, row)


async def test_a_refused_transfer_shows_with_the_hubs_reason(tmp_path: Path) -> None:
    async with refused_transfer(tmp_path) as refused:
        sent, row = refused.sent, refused.row
        data = await overview(refused.node)
    assert row["document_id"] == sent["document_id"] and row["route"] == "hub"
    assert "EDOC-HUB-001" in row["last_error"]
    (recent,) = data["recent"]
    assert recent["recipients"] == [{"org_id": KON_TUM, "state": "failed"}]
    assert data["agencies"][0]["org_id"] == SENDER and data["agencies"][0]["sent"] == 1
    assert data["partners"] == [
        {"code": "H34", "name": "UBND tỉnh Kon Tum", "sent": 1, "received": 0}
    ]


async def test_retry_now_sends_what_waits_out_its_backoff(tmp_path: Path) -> None:
    async with node_support.door(tmp_path) as door:
        door.config = dataclasses.replace(
            door.config, operator_token=OPERATOR, retry_base=60, retry_cap=60
        )
        door.hub.book = door.hub.signed_book(KON_TUM)  # the fake hub answers 503: busy
        async with door.node() as node:
            await node.send(metadata(SENDER, [KON_TUM]))

            async def retried() -> list[dict[str, Any]]:
                rows: list[dict[str, Any]] = (await overview(node))["troubled"]
                return [r for r in rows if r["state"] == "pending" and r["attempts"] > 0]

            (row,) = await eventually(retried, timeout=10)
            assert "EDOC-HUB-004" in row["last_error"]
            totals = (await overview(node))["totals"]
            assert totals["backlog_hub"] == 1
            assert totals["on_time_share"] is None  # due, none completed: n/a, not 0 %
            tried = len(door.hub.packages)
            door.hub.package_answer = (202, {})  # not yet due: a minute's backoff
            status, body, _ = await node.request(
                "POST",
                "/dashboard/api/retry",
                data={"route": "hub"},
                headers=AS_OPERATOR | {"Accept": "application/json"},
            )
            assert (status, body) == (200, {"retried": "hub"})
            await eventually(lambda: _more(door.hub.packages, tried), timeout=5)


async def _more(packages: list[bytes], than: int) -> bool:
    return len(packages) > than


async def test_an_unknown_route_is_refused(tmp_path: Path) -> None:
    async with node_support.door(tmp_path) as door:
        door.config = dataclasses.replace(door.config, operator_token=OPERATOR)
        async with door.node(with_book=False) as node:
            status, body, _ = await node.request(
                "POST", "/dashboard/api/retry", data={"route": "moon"}, headers=AS_OPERATOR
            )
    assert (status, body["error"]["code"]) == (400, "EDOC-ENV-002")


async def test_the_hub_refusing_the_nodes_credentials_shows_and_fails_nothing(
    tmp_path: Path,
) -> None:
    """The node's hub token refused (401): every document waits, none is failed; the
    operator must see why on the dashboard, not only in the log."""
    async with refusing_hub(tmp_path, 401, "EDOC-AUTH-001", "unknown node token") as (_, node):
        assert (await overview(node))["hub_refuses_node"] is False
        await node.send(metadata(SENDER, [KON_TUM]))

        async def refused() -> bool:
            return bool((await overview(node))["hub_refuses_node"])

        await eventually(refused, timeout=10)
        (row,) = (await overview(node))["troubled"]
        assert row["state"] == "pending" and "EDOC-AUTH-001" in row["last_error"]


async def _post_with_cookie(node: Node, path: str, origin: str | None) -> tuple[int, Any]:
    """A POST a browser makes with the login cookie, from a page of ``origin``."""
    headers = {
        "Cookie": f"{auth.COOKIE}={auth.session_value(OPERATOR)}",
        "Accept": "application/json",
    }
    if origin is not None:
        headers["Origin"] = origin
    form = {"route": "hub", "outgoing_id": "1"}
    async with node.client.post(path, data=form, headers=headers) as response:
        return response.status, await response.json()


async def test_a_change_from_another_sites_page_is_refused(tmp_path: Path) -> None:
    """SameSite=Strict keeps the cookie from other sites' forms, but a site is a domain
    whatever its port or subdomain: every other service on 127.0.0.1 (`edoc up`'s hub
    and nodes), every other province's node under one national domain is same-site.
    A change the cookie asks for comes from the dashboard's own page, or not at all."""
    async with node_support.door(tmp_path) as door:
        door.config = dataclasses.replace(door.config, operator_token=OPERATOR)
        async with door.node(with_book=False) as node:
            own = str(node.client.make_url("/").origin())
            for path in ("/dashboard/api/retry", "/dashboard/api/reopen"):
                for foreign in ("http://127.0.0.1:1", "http://evil.example", "null", None):
                    status, body = await _post_with_cookie(node, path, foreign)
                    assert (status, body["error"]["code"]) == (401, "EDOC-AUTH-003"), foreign
                    assert "another site" in body["error"]["message"]
            assert await _post_with_cookie(node, "/dashboard/api/retry", own) == (
                200,
                {"retried": "hub"},
            )
            status, body = await _post_with_cookie(node, "/dashboard/api/reopen", own)
            assert (status, body["error"]["code"]) == (404, "EDOC-HTTP-404")  # admitted: no such


async def _post_as_addressed(node: Node, host: str, origin: str) -> int:
    """A retry a browser posts with the login cookie from ``origin``'s page, the node
    addressed as ``host`` (a proxy in front of it may say the port the browser left out)."""
    headers = {
        "Cookie": f"{auth.COOKIE}={auth.session_value(OPERATOR)}",
        "Accept": "application/json",
        "Host": host,
        "Origin": origin,
    }
    form = {"route": "hub", "outgoing_id": "1"}
    async with node.client.post("/dashboard/api/retry", data=form, headers=headers) as response:
        return response.status


async def test_a_change_from_the_own_page_is_taken_however_its_address_is_written(
    tmp_path: Path,
) -> None:
    """A browser leaves the scheme's port out of the Origin (80, 443), and a host name's
    case means nothing: the dashboard's own page addressed so is its own. Another port,
    host or scheme's default port is still another site."""
    async with node_support.door(tmp_path) as door:
        door.config = dataclasses.replace(door.config, operator_token=OPERATOR)
        async with door.node(with_book=False) as node:
            for host, origin in (
                ("node.example:443", "https://node.example"),
                ("node.example", "https://node.example:443"),
                ("node.example:80", "http://node.example"),
                ("Node.Example:8443", "https://node.example:8443"),
                ("[::1]:8443", "https://[::1]:8443"),
                ("[::1]", "http://[::1]:80"),
            ):
                assert await _post_as_addressed(node, host, origin) == 200, (host, origin)
            for host, origin in (
                ("node.example:443", "https://node.example:444"),
                ("node.example:443", "http://node.example"),
                ("node.example:80", "https://node.example"),
                ("node.example", "https://evil.example"),
                ("node.example", "https://node.example.evil.example"),
                ("node.example:443", "https://node.example:x"),
                ("node.example", "ftp://node.example"),
            ):
                assert await _post_as_addressed(node, host, origin) == 401, (host, origin)
