"""A transfer to the node's own agencies carried again (the node stopped, or its store
failed, after the inbox took the package and before the transfer's end was recorded)
finds its recipients holding the package: with its sender's seal revoked in between it
must not show failed, nor the sender read that its recipient never got it. The node
in-process (a fake hub: nothing goes to it), stopped and started again on its data."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from edoc.client import AgencyClient
from edoc.model import Route, StatusCode, TransferState
from edoc.node import app as node_app
from edoc.node.state import NodeConfig, NodeState
from tests.support import node as node_support
from tests.support.network import metadata
from tests.support.node import Node
from tests.support.pki import SENDER

LOCAL = "000.00.07.H53"  # another agency of the sender's node
LOCAL_TOKEN = "agency-token-of-the-local-recipient"
HELD = "refused, but every local recipient holds it already: delivered as before"


async def _until(condition: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.02)


def _recipient(node: Node) -> AgencyClient:
    return AgencyClient(str(node.client.make_url("")), LOCAL_TOKEN)


def _state(node: Node) -> NodeState:
    return node.client.app[node_app.STATE]


async def _outbox_idle(node: Node) -> bool:
    return not any((await _state(node).store.pending_transfers()).values())


async def _answered(node: Node, outgoing_id: int) -> bool:
    (recipient,) = (await node.document(outgoing_id))["recipients"]
    return bool(recipient["state"] == StatusCode.ARRIVED) and await _outbox_idle(node)


def _crashed_before_the_end(config: NodeConfig, outgoing_id: int) -> None:
    """The transfer to the local agencies as a stop after the inbox took its package and
    before its end was recorded left it: pending, due, never tried (the store counts a
    try when it records its end). (Its recipient's 01 went first after the restart.)"""
    database = sqlite3.connect(config.data_dir / "node.sqlite")
    try:
        with database:
            changed = database.execute(
                "UPDATE transfers SET state=?, attempts=0, next_at=0, last_error=''"
                " WHERE outgoing_id=? AND route=?",
                (TransferState.PENDING, outgoing_id, Route.LOCAL),
            ).rowcount
    finally:
        database.close()
    assert changed == 1


async def test_a_local_transfer_carried_again_after_its_sender_was_revoked_is_delivered(
    tmp_path: Path,
) -> None:
    async with node_support.door(tmp_path) as door:
        door.hub.keys.issue(LOCAL, org_name="Sở Nội vụ tỉnh Tây Ninh")
        await node_app.add_agency(door.config, LOCAL, "Sở Nội vụ", LOCAL_TOKEN)
        async with door.node(with_book=False) as node:
            posted = await node.post_document(metadata(SENDER, [LOCAL]))
            await _until(lambda: _answered(node, posted["id"]))
            held = await _recipient(node).inbox(LOCAL)
            assert len(held) == 1
        _crashed_before_the_end(door.config, posted["id"])
        door.hub.keys.revoke(SENDER, "keyCompromise")
        with capture_logs() as logs:
            async with door.node(with_book=False) as node:
                await _until(lambda: _outbox_idle(node))
                shown: dict[str, Any] = await node.document(posted["id"])
                assert await _recipient(node).inbox(LOCAL) == held  # as it was, answered 01 only
    assert [t["state"] for t in shown["transfers"]] == [TransferState.DONE]
    (local,) = shown["recipients"]
    assert local["state"] == StatusCode.ARRIVED
    assert "failed" not in [event["state"] for event in local["history"]]
    assert [e["event"] for e in logs if e["event"] == HELD] == [HELD]
