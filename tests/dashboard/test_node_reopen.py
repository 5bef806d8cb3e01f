"""A node's dashboard retries a transfer that failed for good: the hub refused it (or the
outbox gave up), the operator fixed the cause, and the document goes out again."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from tests.dashboard.support import OPERATOR
from tests.dashboard.test_node_data import AS_OPERATOR, KON_TUM, overview
from tests.support import node as node_support
from tests.support.network import eventually, metadata
from tests.support.node import Node
from tests.support.pki import SENDER

REOPEN = "/dashboard/api/reopen"
AS_JSON = AS_OPERATOR | {"Accept": "application/json"}


async def reopen(node: Node, form: dict[str, Any], headers: dict[str, str] = AS_JSON) -> Any:
    status, body, _ = await node.request("POST", REOPEN, data=form, headers=headers)
    return status, body


async def test_a_refused_transfer_is_retried_and_delivered(tmp_path: Path) -> None:
    async with node_support.door(tmp_path) as door:
        door.config = dataclasses.replace(door.config, operator_token=OPERATOR)
        door.hub.book = door.hub.signed_book(KON_TUM)
        refusal = {"code": "EDOC-HUB-001", "message": "not in the address book"}
        door.hub.package_answer = (422, {"error": refusal})
        async with door.node() as node:
            status, sent, _ = await node.send(metadata(SENDER, [KON_TUM]))
            assert status == 202, sent

            async def failed() -> list[dict[str, Any]]:
                rows: list[dict[str, Any]] = (await overview(node))["troubled"]
                return [r for r in rows if r["state"] == "failed"]

            (row,) = await eventually(failed, timeout=10)
            page = (await node.request("GET", "/dashboard/", headers=AS_OPERATOR))[1]
            assert b'action="/dashboard/api/reopen"' in page  # a failed row has its button
            door.hub.package_answer = (202, accepted(sent["document_id"]))  # the hub knows it now
            form = {"outgoing_id": str(row["id"]), "route": "hub"}
            answer = await reopen(node, form)
            assert answer == (200, {"reopened": {"outgoing_id": row["id"], "route": "hub"}})

            async def recipients() -> list[dict[str, str]] | None:
                (recent,) = (await overview(node))["recent"]
                shown: list[dict[str, str]] = recent["recipients"]
                return shown if shown[0]["state"] == "sent" else None

            assert await eventually(recipients, timeout=10) == [
                {"org_id": KON_TUM, "state": "sent"}
            ]
            assert len(door.hub.packages) == 2  # refused once, then accepted
            assert (await overview(node))["troubled"] == []
            again = await reopen(node, form)  # done now: nothing to retry
    assert again[0] == 404 and again[1]["error"]["code"] == "EDOC-HTTP-404"


def accepted(document_id: str) -> dict[str, Any]:
    return {
        "id": 1,
        "kind": "document",
        "document_id": document_id,
        "status_code": None,
        "recipients": [KON_TUM],
        "accepted_at": "2026-11-24T08:00:00+00:00",
    }


async def test_a_bad_retry_is_refused(tmp_path: Path) -> None:
    async with node_support.door(tmp_path) as door:
        door.config = dataclasses.replace(door.config, operator_token=OPERATOR)
        async with door.node(with_book=False) as node:
            agency = await reopen(node, {"outgoing_id": "1", "route": "hub"}, headers={})
            no_id = await reopen(node, {"outgoing_id": "x", "route": "hub"})
            bad_route = await reopen(node, {"outgoing_id": "1", "route": "moon"})
            unknown = await reopen(node, {"outgoing_id": "42", "route": "hub"})
    assert (agency[0], agency[1]["error"]["code"]) == (401, "EDOC-AUTH-003")
    assert (no_id[0], no_id[1]["error"]["code"]) == (400, "EDOC-ENV-002")
    assert (bad_route[0], bad_route[1]["error"]["code"]) == (400, "EDOC-ENV-002")
    assert (unknown[0], unknown[1]["error"]["code"]) == (404, "EDOC-HTTP-404")
