"""The hub's dashboard finds a document by its DocumentId: its deliveries and the
statuses its recipients sent back."""

from __future__ import annotations

import io
from pathlib import Path
from urllib.parse import quote

import pytest

from edoc import envelope
from edoc.model import StatusCode
from tests.dashboard.support import NGHE_AN, NGHE_AN_TOKEN, NODE_TOKEN, TAY_NINH, hub
from tests.support.hub import document, status

TRACE = "/dashboard/api/trace?document_id="


async def test_a_document_and_the_status_back(tmp_path: Path) -> None:
    async with hub(tmp_path) as running:
        package = document(running.ca, [NGHE_AN], sender=TAY_NINH)
        document_id = envelope.read_package(io.BytesIO(package)).document.document_id
        assert await running.post_package(package) == 202
        answer = status(running.ca, NGHE_AN, package, StatusCode.ARRIVED)
        assert await running.post_package(answer, token=NGHE_AN_TOKEN) == 202
        other = document(running.ca, [NGHE_AN], sender=TAY_NINH)  # not shown
        assert await running.post_package(other) == 202
        code, found = await running.get(f"{TRACE}{quote(document_id)}")
        _, unknown = await running.get(f"{TRACE}{quote(document_id + 'x')}")
        _, refused = await running.get(f"{TRACE}{quote(document_id)}", token=NODE_TOKEN)
    assert code == 200 and found["document_id"] == document_id
    sent, back = found["hops"]
    assert (sent["kind"], sent["sender"], sent["recipient"], sent["node"]) == (
        "document",
        TAY_NINH,
        NGHE_AN,
        "H41",
    )
    assert sent["delivered_at"] is None and sent["attempts"] == 0
    assert (back["kind"], back["status_code"], back["recipient"]) == ("status", "01", TAY_NINH)
    assert unknown["hops"] == []
    assert refused["error"]["code"] == "EDOC-AUTH-003"


@pytest.mark.parametrize("document_id", ["", "not-an-org,2026/11/23,1/UBND"])
async def test_a_search_that_is_no_document_id_is_refused(tmp_path: Path, document_id: str) -> None:
    async with hub(tmp_path) as running:
        code, body = await running.get(f"{TRACE}{quote(document_id)}")
    assert code == 400 and body["error"]["code"] in ("EDOC-ENV-002", "EDOC-ORG-001")
