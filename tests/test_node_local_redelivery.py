"""A transfer to the node's own agencies carried again (the node stopped, or its store
failed, after the inbox took the package and before the transfer's end was recorded)
finds its recipients holding the package: with its sender's seal revoked in between it
must not show failed, nor the sender read that its recipient never got it. The node
in-process (a fake hub: nothing goes to it), stopped and started again on its data."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from edoc import errors
from edoc.client import AgencyClient
from edoc.model import DeliveryState, Route, StatusCode, TransferState
from edoc.node import app as node_app
from edoc.node import compose
from edoc.node.state import NodeConfig, NodeState
from edoc.store.node import NewInboxItem
from tests.support import node as node_support
from tests.support.network import metadata
from tests.support.node import Node
from tests.support.pki import SENDER

LOCAL = "000.00.07.H53"  # another agency of the sender's node
LOCAL_TOKEN = "agency-token-of-the-local-recipient"
OTHER = "000.00.09.H53"  # and a third, after it in the order the inbox stores them
HELD = "refused, but every local recipient holds it already: delivered as before"
# a package the store keeps, and one kept in a file of its own (more than IN_STORE attached)
PACKAGES = {"in the store": {}, "in a file": {"scan.pdf": b"\x25" * (compose.IN_STORE + 1)}}


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


def _copies(config: NodeConfig) -> list[Path]:
    """The copies of packages in files the outbox handed to its own inbox, left over."""
    return sorted((config.data_dir / "incoming").glob("local-*"))


@pytest.mark.parametrize("files", PACKAGES.values(), ids=PACKAGES.keys())
async def test_a_local_transfer_carried_again_after_its_sender_was_revoked_is_delivered(
    tmp_path: Path, files: dict[str, bytes]
) -> None:
    """(The package in a file is refused from a copy: none is left behind.)"""
    async with node_support.door(tmp_path) as door:
        door.hub.keys.issue(LOCAL, org_name="Sở Nội vụ tỉnh Tây Ninh")
        await node_app.add_agency(door.config, LOCAL, "Sở Nội vụ", LOCAL_TOKEN)
        async with door.node(with_book=False) as node:
            posted = await node.post_document(metadata(SENDER, [LOCAL]), files)
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
                assert _copies(door.config) == []
    assert [t["state"] for t in shown["transfers"]] == [TransferState.DONE]
    (local,) = shown["recipients"]
    assert local["state"] == StatusCode.ARRIVED
    assert "failed" not in [event["state"] for event in local["history"]]
    assert [e["event"] for e in logs if e["event"] == HELD] == [HELD]


def _retrying_late(door: node_support.Door) -> None:
    """A transfer not carried waits a minute for its next try: looked at between tries."""
    door.config = dataclasses.replace(door.config, retry_base=60.0, retry_cap=60.0)


async def _tried(node: Node, outgoing_id: int) -> bool:
    (transfer,) = (await node.document(outgoing_id))["transfers"]
    return bool(transfer["attempts"] >= 1)


async def test_a_local_transfer_of_a_package_in_a_file_not_taken_leaves_no_copy(
    tmp_path: Path,
) -> None:
    """Its recipient has no seal yet (its 01 cannot be signed): the transfer waits for
    its next try, and the copy its inbox did not take is gone meanwhile."""
    async with node_support.door(tmp_path) as door:
        await node_app.add_agency(door.config, LOCAL, "Sở Nội vụ", LOCAL_TOKEN)
        _retrying_late(door)
        async with door.node(with_book=False) as node:
            posted = await node.post_document(metadata(SENDER, [LOCAL]), PACKAGES["in a file"])
            await _until(lambda: _tried(node, posted["id"]))
            assert _copies(door.config) == []
            (transfer,) = (await node.document(posted["id"]))["transfers"]
    assert transfer["state"] == TransferState.PENDING
    assert errors.UnknownCertificate.code in transfer["last_error"]


def _store_fails_for(state: NodeState, recipient: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The node's store fails to take ``recipient``'s copy of any document (as a stop
    would leave it: the copies stored before it kept, none after)."""
    add = state.store.add_received_document

    async def failing(item: NewInboxItem, *rest: Any) -> Any:
        if item.recipient == recipient:
            raise errors.StorageError("store failed: disk I/O error")
        return await add(item, *rest)

    monkeypatch.setattr(state.store, "add_received_document", failing)


def _states(shown: dict[str, Any]) -> dict[str, str]:
    return {r["org_id"]: r["state"] for r in shown["recipients"]}


@pytest.mark.parametrize("files", PACKAGES.values(), ids=PACKAGES.keys())
async def test_a_local_transfer_carried_again_and_refused_fails_only_who_does_not_hold_it(
    tmp_path: Path, files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two local recipients: the store failed after the first's inbox took the package
    and before the second's; the sender's seal revoked in between, the transfer carried
    again is refused. The first holds it and answered 01: it stays delivered, only the
    second fails (and no copy of a package in a file is left behind)."""
    async with node_support.door(tmp_path) as door:
        for org, token in ((LOCAL, LOCAL_TOKEN), (OTHER, "agency-token-of-the-other")):
            door.hub.keys.issue(org, org_name=f"Sở {org}")
            await node_app.add_agency(door.config, org, f"Sở {org}", token)
        _retrying_late(door)
        async with door.node(with_book=False) as node:
            _store_fails_for(_state(node), OTHER, monkeypatch)
            posted = await node.post_document(metadata(SENDER, [LOCAL, OTHER]), files)

            async def first_answered_second_not_taken() -> bool:
                shown = _states(await node.document(posted["id"]))
                arrived = shown == {LOCAL: StatusCode.ARRIVED, OTHER: DeliveryState.QUEUED}
                return arrived and await _tried(node, posted["id"])

            await _until(first_answered_second_not_taken)
        assert _copies(door.config) == []
        _crashed_before_the_end(door.config, posted["id"])
        door.hub.keys.revoke(SENDER, "keyCompromise")
        async with door.node(with_book=False) as node:
            await _until(lambda: _outbox_idle(node))
            shown: dict[str, Any] = await node.document(posted["id"])
            assert _copies(door.config) == []
    (transfer,) = shown["transfers"]
    assert transfer["state"] == TransferState.FAILED
    assert errors.RevokedCertificate.code in transfer["last_error"]
    assert _states(shown) == {LOCAL: StatusCode.ARRIVED, OTHER: DeliveryState.FAILED}
    local, other = sorted(shown["recipients"], key=lambda r: r["org_id"])
    assert [e["state"] for e in local["history"]] == [
        DeliveryState.QUEUED,
        StatusCode.ARRIVED,
        DeliveryState.DELIVERED,
    ]
    assert [e["state"] for e in other["history"]] == [DeliveryState.QUEUED, DeliveryState.FAILED]
