"""A node's dashboard retries a transfer that failed for good: the hub refused it (or the
outbox gave up), the operator fixed the cause, and the document goes out again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edoc import wire
from tests.dashboard.test_node_data import AS_OPERATOR, KON_TUM, overview, refused_transfer
from tests.support.network import eventually
from tests.support.node import Node

REOPEN = "/dashboard/api/reopen"
AS_JSON = AS_OPERATOR | {"Accept": "application/json"}


async def reopen(node: Node, form: dict[str, Any], headers: dict[str, str] = AS_JSON) -> Any:
    status, body, _ = await node.request("POST", REOPEN, data=form, headers=headers)
    return status, body


async def test_a_refused_transfer_is_retried_and_delivered(tmp_path: Path) -> None:
    async with refused_transfer(tmp_path) as refused:
        door, node, sent, row = refused.door, refused.node, refused.sent, refused.row
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

        assert await eventually(recipients, timeout=10) == [{"org_id": KON_TUM, "state": "sent"}]
        assert len(door.hub.packages) == 2  # refused once, then accepted
        assert (await overview(node))["troubled"] == []
        again = await reopen(node, form)  # done now: nothing to retry
    assert again[0] == 404 and again[1]["error"]["code"] == "EDOC-HTTP-404"


def accepted(document_id: str) -> dict[str, Any]:
    """The hub's 202 for ``document_id``."""
    answer = wire.PackageAccepted(
        1, "document", document_id, None, (KON_TUM,), "2026-11-24T08:00:00+00:00"
    )
    return answer.to_json()
