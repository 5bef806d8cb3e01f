"""The typed clients and wire shapes: errors under the service's code, strict reading."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from edoc import errors, tls, wire
from edoc.client import AgencyClient, HubBusy, HubClient, error_of
from edoc.hub.state import HUB_ORG_ID
from tests.support.pki import Ca

NOTICE = wire.DeliveryNotice(
    id=7,
    hub_id=3,
    recipient="000.00.01.H34",
    kind="status",
    sender="000.00.12.H53",
    document_id="000.00.12.H53,2026/11/23,1/UBND",
    status_code="03",
    priority=2,
    size=1234,
    attempts=1,
)


@pytest.mark.parametrize(
    "shape",
    [
        NOTICE,
        wire.DeliveryNotice(**{**NOTICE.__dict__, "package": b"<a>", "status_code": None}),
        wire.PackageAccepted(7, "document", "d", None, ("000.00.01.H34",), "2026-12-01T00:00:00"),
        wire.Acknowledged((1, 2), (2,)),
        wire.Registered(4, 12),
    ],
    ids=lambda shape: type(shape).__name__,
)
def test_each_wire_shape_reads_back_what_was_written(shape: Any) -> None:
    assert type(shape).from_json(shape.to_json()) == shape


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**NOTICE.to_json(), "id": "7"}, "id"),
        ({**NOTICE.to_json(), "priority": True}, "priority"),
        ({k: v for k, v in NOTICE.to_json().items() if k != "sender"}, "sender"),
        ([], "id"),
    ],
)
def test_a_wrong_shape_is_a_bad_answer_naming_its_field(body: object, field: str) -> None:
    with pytest.raises(errors.BadAnswer, match=repr(field)):
        wire.DeliveryNotice.from_json(body)


def test_a_refusal_keeps_the_services_code_and_status() -> None:
    error = error_of(409, {"error": {"code": "EDOC-HUB-003", "message": "duplicate"}})
    assert (error.code, error.status, error.message) == ("EDOC-HUB-003", 409, "duplicate")
    bare = error_of(502, b"<html>bad gateway</html>")
    assert (bare.code, bare.status) == ("EDOC-HTTP-502", 502)


def _refusing(status: int, code: str) -> web.Application:
    async def refuse(_request: web.Request) -> web.Response:
        return web.json_response({"error": {"code": code, "message": "no"}}, status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    return app


@pytest.fixture
async def server(request: pytest.FixtureRequest) -> AsyncIterator[TestServer]:
    running: TestServer
    status, code = request.param
    async with TestServer(_refusing(status, code)) as running:  # type: ignore[assignment]
        yield running


@pytest.mark.parametrize("server", [(409, "EDOC-NODE-002")], indirect=True)
async def test_the_agency_client_raises_the_nodes_refusal(server: TestServer) -> None:
    async with AgencyClient(str(server.make_url("")), token="t") as client:
        answer = await client.send({"from": "x"}, [("a.txt", b"a")], idempotency_key="k")
        assert answer.status == 409
        with pytest.raises(errors.RemoteError) as refused:
            await client.post_document({"from": "x"})
    assert (refused.value.code, refused.value.status) == ("EDOC-NODE-002", 409)


@pytest.mark.parametrize(
    ("server", "raised", "code"),
    [
        ((503, "EDOC-STORE-001"), errors.HubUnavailable, "EDOC-NODE-001"),  # to retry
        # a proxy's or a full disk's: a server's trouble is retried too, never final
        ((520, "EDOC-000"), errors.HubUnavailable, "EDOC-NODE-001"),
        ((507, "EDOC-000"), errors.HubUnavailable, "EDOC-NODE-001"),
        ((422, "EDOC-SIG-002"), errors.RemoteError, "EDOC-SIG-002"),  # refused for good
    ],
    indirect=["server"],
)
async def test_the_hub_client_tells_retry_from_refusal(
    server: TestServer, raised: type[errors.EdocError], code: str
) -> None:
    async with HubClient(str(server.make_url("")), token="t") as hub:
        with pytest.raises(errors.EdocError) as caught:
            await hub.post_package(b"<edXML/>")
    assert (type(caught.value), caught.value.code) == (raised, code)


async def test_no_connection_is_the_clients_unreachable_error() -> None:
    async with TestServer(web.Application()) as gone:
        url = str(gone.make_url(""))
    with pytest.raises(errors.HubUnreachable):
        await HubClient(url).collect(wait=0)
    with pytest.raises(errors.Unreachable):
        await AgencyClient(url).inbox()


async def test_a_failed_connect_names_its_host_and_port_not_the_tls_context() -> None:
    """It said `Cannot connect to host 127.0.0.1:N ssl:<ssl.SSLContext object at 0x7f…>`:
    in the CLI's errors, and in the last_error an agency reads on its document."""
    async with TestServer(web.Application()) as gone:
        port = gone.port
    client = HubClient(f"https://127.0.0.1:{port}", ssl_context=ssl.create_default_context())
    with pytest.raises(errors.HubUnreachable) as failed:
        await client.collect()
    message = failed.value.message
    assert message.startswith(f"cannot reach {client.base_url}: cannot connect to 127.0.0.1:{port}")
    assert "SSLContext" not in message and " at 0x" not in message and "ssl:" not in message


async def test_a_certificate_not_trusted_is_said_so_naming_host_and_port(tmp_path: Path) -> None:
    ca = Ca.create(tmp_path / "keys")
    ca.keys.issue(HUB_ORG_ID, tls_hosts=("127.0.0.1",))
    hub = TestServer(web.Application(), host="127.0.0.1")
    await hub.start_server(ssl=tls.server_context(ca.keys, HUB_ORG_ID))
    address = f"127.0.0.1:{hub.port}"
    try:  # the system's trust, not the network's CA
        with pytest.raises(errors.Unreachable) as failed:
            await AgencyClient(f"https://{address}").stats()
    finally:
        await hub.close()
    message = failed.value.message
    assert f": {address} presented a certificate not trusted here (" in message
    assert "ssl:" not in message and "args" not in message


async def test_a_tls_service_asked_over_http_is_said_to_be_https(tmp_path: Path) -> None:
    """`edoc stats --hub http://…` of a TLS hub said only "Server disconnected"."""
    ca = Ca.create(tmp_path / "keys")
    ca.keys.issue(HUB_ORG_ID, tls_hosts=("127.0.0.1",))
    hub = TestServer(web.Application(), host="127.0.0.1")
    await hub.start_server(ssl=tls.server_context(ca.keys, HUB_ORG_ID))
    address = f"127.0.0.1:{hub.port}"
    try:
        with pytest.raises(errors.Unreachable) as failed:
            await AgencyClient(f"http://{address}").stats()
    finally:
        await hub.close()
    assert failed.value.message == (
        f"cannot reach http://{address}: Server disconnected; if it serves TLS, its address"
        f" is https://{address}"
    )


async def test_a_plain_service_asked_over_https_is_said_to_be_http() -> None:
    """`edoc send --node https://…` to a plain node said only OpenSSL's words."""
    async with TestServer(web.Application(), host="127.0.0.1") as node:
        address = f"127.0.0.1:{node.port}"
        with pytest.raises(errors.Unreachable) as failed:
            await AgencyClient(f"https://{address}").stats()
    assert failed.value.message.endswith(
        f"; if it serves plain HTTP, its address is http://{address}"
    )


async def test_uvloops_taken_descriptor_is_a_failed_connection() -> None:
    """uvloop may refuse a connect whose file descriptor it still holds (uvloop #653):
    the next try works, so it must read as unreachable, not end a node's collector."""

    class Taken:
        def request(self, *_args: Any, **_kwargs: Any) -> Any:
            raise RuntimeError("File descriptor 15 is used by transport <TCPTransport>")

    session = cast(aiohttp.ClientSession, Taken())
    with pytest.raises(errors.HubUnreachable, match="is used by transport"):
        await HubClient("http://127.0.0.1:9", session=session).collect()


async def test_another_runtime_error_is_not_taken_for_a_failed_connection() -> None:
    session = aiohttp.ClientSession()
    await session.close()  # aiohttp: RuntimeError("Session is closed"), a bug of the caller
    with pytest.raises(RuntimeError, match="closed"):
        await HubClient("http://127.0.0.1:9", session=session).collect()


async def test_the_hub_clients_batch_answer_is_each_packages_as_a_single_post_raises() -> None:
    """For each package: its acceptance, or the error post_package would raise for the
    same status and body (HubUnavailable to retry, RemoteError for good)."""
    accepted = wire.PackageAccepted(7, "document", "d", None, ("000.00.01.H34",), "2026-12-01")
    results = [
        wire.PackageResult(202, accepted),
        wire.PackageResult(429, code="EDOC-HUB-004", message="full", retry_after=5),
        wire.PackageResult(500, code="EDOC-000", message="internal error"),
        wire.PackageResult(409, code="EDOC-HUB-003", message="other content"),
    ]

    async def answer(_request: web.Request) -> web.Response:
        return web.json_response({"results": [r.to_json() for r in results]})

    app = web.Application()
    app.router.add_post("/api/v1/packages/batch", answer)
    async with TestServer(app) as running, HubClient(str(running.make_url(""))) as hub:
        got = await hub.post_packages([b"<a/>"] * len(results))
    assert got[0] == accepted
    assert [type(e) for e in got[1:]] == [
        HubBusy,  # HubUnavailable that says when (its retry_after)
        errors.HubUnavailable,
        errors.RemoteError,
    ]
    assert isinstance(got[1], HubBusy) and got[1].retry_after == 5
    assert "EDOC-HUB-004" in str(got[1]) and "EDOC-000" in str(got[2])
    refused = got[3]
    assert isinstance(refused, errors.RemoteError)
    assert (refused.code, refused.status) == ("EDOC-HUB-003", 409)


@pytest.mark.parametrize(
    ("extra", "remembered"),
    [
        ({}, None),  # a hub that does not say
        ({"batches_under_way": 0}, 0),
        ({"batches_under_way": 9}, 9),
        ({"batches_under_way": -1}, None),  # not a count: as if unsaid, the results kept
        ({"batches_under_way": True}, None),
        ({"batches_under_way": "3"}, None),
    ],
)
async def test_the_hub_client_remembers_how_many_batches_the_hub_had_under_way(
    extra: dict[str, object], remembered: int | None
) -> None:
    """What the outbox widens its window by; nothing from a hub that does not say, or
    says it wrong, and nothing after a request that failed."""
    accepted = wire.PackageAccepted(7, "document", "d", None, ("000.00.01.H34",), "2026-12-01")
    failing = False

    async def answer(_request: web.Request) -> web.Response:
        if failing:
            return web.json_response({"error": {"code": "EDOC-000", "message": "x"}}, status=503)
        return web.json_response({"results": [wire.PackageResult(202, accepted).to_json()]} | extra)

    app = web.Application()
    app.router.add_post("/api/v1/packages/batch", answer)
    async with TestServer(app) as running, HubClient(str(running.make_url(""))) as hub:
        hub.batches_under_way = 3  # from an answer before
        assert await hub.post_packages([b"<a/>"]) == [accepted]
        assert hub.batches_under_way == remembered
        hub.batches_under_way, failing = 3, True
        with pytest.raises(errors.HubUnavailable):
            await hub.post_packages([b"<a/>"])
        assert hub.batches_under_way is None


async def test_the_hub_client_names_itself_anew_after_a_collect_it_did_not_read() -> None:
    """A collect answer that did not come whole (a broken one here; a reset or a hub
    that died after leasing alike) may have leased statuses this process never saw: the
    hub must not take the next collect for the holder of those (HubStore.lease)."""
    heard: list[str] = []
    answers = iter([{"deliveries": []}, {"deliveries": [{"id": "broken"}]}, {"deliveries": []}])

    async def deliveries(request: web.Request) -> web.Response:
        heard.append(request.headers[wire.COLLECTOR])
        return web.json_response(next(answers))

    app = web.Application()
    app.router.add_get("/api/v1/deliveries", deliveries)
    async with TestServer(app) as server, HubClient(str(server.make_url("")), "t") as hub:
        assert await hub.collect() == []
        with pytest.raises(errors.HubUnavailable):  # (a malformed answer is retried)
            await hub.collect()
        assert await hub.collect() == []
    assert heard[0] == heard[1] != heard[2]
    assert len(heard[2]) <= wire.COLLECTOR_CHARS


async def test_an_answer_nested_past_pythons_stack_is_a_refusal_without_an_edoc_error() -> None:
    """A service (or what stands in its place) answering JSON nested past the parser's
    stack: the client says what it got, it does not fail with a RecursionError."""

    async def deep(request: web.Request) -> web.Response:
        return web.Response(status=500, text="[" * 100_000, content_type="application/json")

    app = web.Application()
    app.router.add_post("/api/v1/documents", deep)
    async with TestServer(app) as running, AgencyClient(str(running.make_url("")), "t") as client:
        with pytest.raises(errors.RemoteError) as refused:
            await client.post_document({"from": "x"})
    assert (refused.value.code, refused.value.status) == ("EDOC-HTTP-500", 500)
