"""The agency API's evidence routes: the sending and the receiving agency's container."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edoc import envelope
from edoc.archive.verify import verify_container
from edoc.keystore import KeyStore
from edoc.model import MessageKind
from edoc.node import app as node_app
from edoc.store.node import NewInboxItem, NewOutgoing
from tests.archive import support
from tests.support import node as node_support
from tests.support.envelope import load_sample_metadata
from tests.support.node import Door
from tests.support.pki import SENDER, Ca, Clock, signed_root, wire

OTHER = "000.00.00.H23"


@pytest.fixture
async def door(tmp_path: Path) -> AsyncIterator[Door]:
    async with node_support.door(tmp_path) as opened:
        KeyStore(opened.config.keys_dir).issue_tsa()
        opened.hub.book = opened.hub.signed_book()
        yield opened


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
