"""The hub's dashboard finds the documents an organization sent or was sent on a day,
each with its deliveries and statuses, and hands out the envelope it keeps."""

from __future__ import annotations

import datetime as dt
import io
import os
from pathlib import Path
from typing import Any

import pytest

from edoc import envelope
from edoc.model import StatusCode
from tests.dashboard.support import NGHE_AN, NGHE_AN_TOKEN, NODE_TOKEN, OPERATOR, TAY_NINH, Hub, hub
from tests.support.hub import document, status

DOCUMENTS = "/dashboard/api/documents"
ENVELOPE = "/dashboard/api/envelope?delivery_id="


def document_id_of(package: bytes) -> str:
    return envelope.read_package(io.BytesIO(package)).document.document_id


async def download(running: Hub, delivery_id: object, token: str = OPERATOR) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"}
    async with running.client.get(f"{ENVELOPE}{delivery_id}", headers=headers) as response:
        return response.status, await response.read()


async def test_the_documents_of_an_organization_on_a_day(tmp_path: Path) -> None:
    today = dt.datetime.now(dt.UTC).date()
    async with hub(tmp_path) as running:
        small = document(running.ca, [NGHE_AN], sender=TAY_NINH)
        large = document(
            running.ca, [NGHE_AN], sender=TAY_NINH, files={"scan.pdf": os.urandom(1_000_000)}
        )
        for package in (small, large):
            assert await running.post_package(package) == 202
        answer = status(running.ca, NGHE_AN, small, StatusCode.ARRIVED)
        assert await running.post_package(answer, token=NGHE_AN_TOKEN) == 202
        kept = list((tmp_path / "hub").rglob("*.edxml"))
        code, found = await running.get(f"{DOCUMENTS}?org_id={NGHE_AN}&day={today}")
        _, sender_found = await running.get(f"{DOCUMENTS}?org_id={TAY_NINH}&day={today}")
        _, yesterday = await running.get(
            f"{DOCUMENTS}?org_id={NGHE_AN}&day={today - dt.timedelta(days=1)}"
        )
        first, second = found["documents"]
        envelopes = [await download(running, d["hops"][0]["delivery_id"]) for d in (first, second)]
        refused = await download(running, first["hops"][0]["delivery_id"], token=NODE_TOKEN)
        missing = await download(running, 999)
    assert code == 200 and (found["org_id"], found["day"], found["more"]) == (
        NGHE_AN,
        today.isoformat(),
        False,
    )
    assert [d["document_id"] for d in found["documents"]] == [
        document_id_of(small),
        document_id_of(large),
    ]
    assert [(h["kind"], h["status_code"]) for h in first["hops"]] == [
        ("document", ""),
        ("status", "01"),
    ]
    assert sender_found["documents"] == found["documents"]  # sent by one, sent to the other
    assert yesterday["documents"] == []
    assert len(kept) == 1  # the large one in a file of its own, the small one in the store
    for (status_code, body), package in zip(envelopes, (small, large), strict=True):
        assert status_code == 200
        relayed = envelope.read_package(io.BytesIO(body)).document
        assert relayed.document_id == document_id_of(package)
        assert len(relayed.trace) == 2  # the sender's hop and the hub's
    assert refused[0] == 401 and b"EDOC-AUTH-003" in refused[1]
    assert missing[0] == 404 and b"EDOC-HTTP-404" in missing[1]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("org_id=nobody&day=2026-11-24", "EDOC-ORG-001"),
        (f"org_id={NGHE_AN}&day=24/11/2026", "EDOC-ENV-002"),
        (f"org_id={NGHE_AN}", "EDOC-ENV-002"),
    ],
)
async def test_a_bad_organization_or_day_is_refused(tmp_path: Path, query: str, code: str) -> None:
    async with hub(tmp_path) as running:
        status_code, body = await running.get(f"{DOCUMENTS}?{query}")
    assert (status_code, body["error"]["code"]) == (400, code)


@pytest.mark.parametrize("delivery_id", ["x", "-1", "²"])  # "²".isdigit() but not int()
async def test_a_bad_delivery_id_is_refused(tmp_path: Path, delivery_id: str) -> None:
    async with hub(tmp_path) as running:
        found: Any = await download(running, delivery_id)
    assert found[0] == 400 and b"EDOC-ENV-002" in found[1]
