"""The agency API's evidence routes: the sending and the receiving agency's container."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from edoc import envelope
from edoc.archive import export
from edoc.archive.verify import verify_container
from edoc.keyindex import KeyIndex
from edoc.keystore import KeyStore
from edoc.model import MessageKind
from edoc.node import app as node_app
from edoc.node import compose
from edoc.store.node import NewInboxItem, NewOutgoing
from tests.archive import support
from tests.support import node as node_support
from tests.support.envelope import load_sample_metadata
from tests.support.network import eventually
from tests.support.node import Door
from tests.support.pki import SENDER, Ca, Clock, signed_root, wire

OTHER = "000.00.00.H23"


@pytest.fixture
async def door(tmp_path: Path) -> AsyncIterator[Door]:
    async with node_support.door(tmp_path) as opened:
        KeyStore(opened.config.keys_dir).issue_tsa()
        opened.hub.book = opened.hub.signed_book()
        yield opened


async def _no_container_left(door: Door) -> None:
    """No container's file left in ``incoming/``: each is removed once its response is
    sent, which the node does just after the client has read it all."""

    async def gone() -> bool:
        return not any((door.config.data_dir / "incoming").glob("evidence-*"))

    await eventually(gone, timeout=5)


async def test_the_sender_gets_its_documents_evidence(door: Door) -> None:
    keys = KeyStore(door.config.keys_dir)
    async with door.node() as node:
        status, posted, _ = await node.send({**load_sample_metadata(), "to": [OTHER]})
        assert status == 202, posted
        status, body, headers = await node.request(
            "GET", f"/api/v1/documents/{posted['id']}/evidence"
        )
        assert status == 200, body
        assert headers["Content-Type"] == "application/vnd.etsi.asic-e+zip"
        report = verify_container(body, keys.trust().root)
        assert (report.org_id, report.messages[0].sender) == (SENDER, SENDER)
        assert report.messages[0].file.endswith("01-sent-document.edxml")
        status, refused, _ = await node.request("GET", "/api/v1/documents/999/evidence")
        assert (status, refused["error"]["code"]) == (404, "EDOC-HTTP-404")


async def test_the_recipient_gets_the_evidence_of_what_it_received(door: Door) -> None:
    """What the node keeps of a received document (the package and the agency's 01),
    as the receiving side's container."""
    ca = Ca(KeyStore(door.config.keys_dir), Clock())
    changes: dict[str, Any] = {"from": {"id": OTHER, "name": "UBND"}, "to": [SENDER]}
    document = wire(signed_root(ca, ca.keys.identity(OTHER), **changes))
    arrived = support.status_package(ca, document, responder=SENDER)
    about = envelope.read_package(document).message.about
    item = NewInboxItem(SENDER, OTHER, MessageKind.DOCUMENT, about, 0, "", "", {}, (), document)
    answer = NewOutgoing(
        MessageKind.STATUS, SENDER, about, "01", None, 0, "", {}, (OTHER,), (), arrived
    )
    async with door.node() as node:
        store = node.client.app[node_app.STATE].store
        received = await store.add_received_document(item, answer, dt.datetime.now(dt.UTC), ())
        path = f"/api/v1/inbox/{received.inbox_id}/evidence"
        status, body, _ = await node.request("GET", path)
        assert status == 200, body
        report = verify_container(body, ca.keys.trust().root)
        assert [m.sender for m in report.messages] == [OTHER, SENDER]
        assert report.document_id == about
        status, refused, _ = await node.request(
            "GET", path, headers={"Authorization": "Bearer another"}
        )
        assert (status, refused["error"]["code"]) == (401, "EDOC-AUTH-001")


async def test_a_package_file_is_read_off_the_loop(
    door: Door, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large document's package is kept in a file: the container is built from it on the
    node's worker threads (it was read whole on the loop), in a file of its own that is
    gone once sent."""
    loop_thread = threading.get_ident()
    readers: list[int] = []
    real_open = Path.open

    def watched_open(path: Path, *args: Any, **kwargs: Any) -> Any:
        if path.parent.name == "outgoing" and path.suffix == ".edxml":
            readers.append(threading.get_ident())
        return real_open(path, *args, **kwargs)

    keys = KeyStore(door.config.keys_dir)
    large = [("large.bin", bytes(range(256)) * (compose.IN_STORE // 256 + 1))]
    async with door.node() as node:
        status, posted, _ = await node.send({**load_sample_metadata(), "to": [OTHER]}, large)
        assert status == 202, posted
        outgoing = await node.client.app[node_app.STATE].store.outgoing(posted["id"])
        assert outgoing is not None and outgoing.path  # kept in a file
        monkeypatch.setattr(Path, "open", watched_open)
        status, body, _ = await node.request("GET", f"/api/v1/documents/{posted['id']}/evidence")
        monkeypatch.undo()
        assert status == 200, body
        assert verify_container(body, keys.trust().root).document_id == outgoing.document_id
        assert readers and loop_thread not in readers
        await _no_container_left(door)


async def test_the_crl_is_read_once_off_the_loop(
    door: Door, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The container carries the CRL in force: its file is read where the container is
    built, on a worker thread (it was read on the loop), and once."""
    loop_thread = threading.get_ident()
    readers: list[int] = []
    real_crl = KeyIndex.crl

    def watched_crl(keys: KeyIndex) -> Any:
        readers.append(threading.get_ident())
        return real_crl(keys)

    monkeypatch.setattr(KeyIndex, "crl", watched_crl)
    async with door.node() as node:
        status, posted, _ = await node.send({**load_sample_metadata(), "to": [OTHER]})
        assert status == 202, posted
        status, body, _ = await node.request("GET", f"/api/v1/documents/{posted['id']}/evidence")
    assert status == 200, body
    assert len(readers) == 1 and readers[0] != loop_thread


async def test_builds_past_the_bound_are_refused(
    door: Door, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node builds at most half its worker threads' worth of containers at once (the
    test node has one thread: one build); past them 429 EDOC-HUB-004 with a Retry-After,
    and a slot is free again once its build is done."""
    entered, release = asyncio.Event(), asyncio.Event()
    real = export.kept_of

    async def held(*args: Any) -> Any:
        entered.set()
        await release.wait()
        return await real(*args)

    monkeypatch.setattr(export, "kept_of", held)
    async with door.node() as node:
        status, posted, _ = await node.send({**load_sample_metadata(), "to": [OTHER]})
        assert status == 202, posted
        path = f"/api/v1/documents/{posted['id']}/evidence"
        first = asyncio.create_task(node.request("GET", path))
        async with asyncio.timeout(10):
            await entered.wait()
            status, refused, headers = await node.request("GET", path)
        assert (status, refused["error"]["code"]) == (429, "EDOC-HUB-004")
        assert int(headers["Retry-After"]) > 0
        release.set()
        status, body, _ = await first
        assert status == 200, body
        status, body, _ = await node.request("GET", path)
        assert status == 200, body


async def test_a_package_gone_is_said_without_the_nodes_paths(door: Door) -> None:
    """503 EDOC-STORE-001, its message naming no file of the node (it said "a kept package
    is gone from /…/outgoing/fa42….edxml"); the log names the file."""
    large = [("large.bin", bytes(range(256)) * (compose.IN_STORE // 256 + 1))]
    async with door.node() as node:
        status, posted, _ = await node.send({**load_sample_metadata(), "to": [OTHER]}, large)
        assert status == 202, posted
        outgoing = await node.client.app[node_app.STATE].store.outgoing(posted["id"])
        assert outgoing is not None and outgoing.path
        Path(outgoing.path).unlink()
        with capture_logs() as logs:
            status, refused, _ = await node.request(
                "GET", f"/api/v1/documents/{posted['id']}/evidence"
            )
        assert (status, refused["error"]["code"]) == (503, "EDOC-STORE-001")
        said = refused["error"]["message"]
        assert str(door.config.data_dir) not in said and Path(outgoing.path).name not in said
        assert outgoing.document_id in said
        assert any(outgoing.path in str(entry.get("reason")) for entry in logs)


async def test_a_container_is_sent_whole_whatever_parts_or_versions_are_asked_for(
    door: Door,
) -> None:
    """Each request builds another container (its time stamp, its size): a part of this
    one (a resumed download) would be spliced onto another's, and a 304 would answer for
    a container never sent. Ranges and conditions are not answered; HEAD builds none."""
    async with door.node() as node:
        status, posted, _ = await node.send({**load_sample_metadata(), "to": [OTHER]})
        assert status == 202, posted
        path = f"/api/v1/documents/{posted['id']}/evidence"
        auth = {"Authorization": f"Bearer {node_support.TOKEN}"}
        asked_for = (
            {"Range": "bytes=100-"},
            {"If-None-Match": "*"},
            {"If-Modified-Since": "Thu, 01 Jan 2099 00:00:00 GMT"},
            {"If-Match": '"other"'},
        )
        for headers in asked_for:
            async with node.client.get(path, headers={**auth, **headers}) as response:
                body = await response.read()
                assert response.status == 200, headers
                assert response.headers.get("Accept-Ranges") != "bytes"
                assert int(response.headers["Content-Length"]) == len(body) > 100
            verify_container(body, KeyStore(door.config.keys_dir).trust().root)
        async with node.client.head(path, headers=auth) as response:
            assert response.status == 405
        await _no_container_left(door)
