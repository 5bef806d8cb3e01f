"""A large document through two hub instances on one PostgreSQL: the instance that
accepted it is killed (kill -9) as soon as it has, so the other one delivers it, from the
packages folder they share (large packages are files there, never rows or memory)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from edoc import launcher
from tests.reliability.test_hubs_postgres import SharedHubNetwork
from tests.store import postgres
from tests.support.network import Agency, metadata

MB = 1024 * 1024


@pytest.fixture
def hub_database() -> Iterator[str]:
    yield from postgres.fresh_database("large")


def _write(path: Path, size: int) -> str:
    """``size`` incompressible bytes (a scan) in ``path``; their SHA-256."""
    block = os.urandom(MB)
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(size // MB):
            out.write(block)
            digest.update(block)
    return digest.hexdigest()


async def _post_file(agency: Agency, data: dict[str, object], path: Path) -> tuple[int, object]:
    """The document with ``path`` attached, streamed from the file."""
    with path.open("rb") as attachment:
        form = aiohttp.FormData()
        form.add_field("metadata", json.dumps(data), content_type="application/json")
        form.add_field("file", attachment, filename=path.name)
        status, body, _ = await agency.request("POST", "/api/v1/documents", data=form)
    return status, body


def _accepted_by(net: SharedHubNetwork, before: dict[str, int]) -> str | None:
    """The hub instance that logged an acceptance since ``before`` (counts by instance)."""
    for name in net.hub_names:
        if _acceptances(net, name) > before[name]:
            return name
    return None


def _acceptances(net: SharedHubNetwork, name: str) -> int:
    return launcher.log_path(net.network, name).read_bytes().count(b"accepted")


async def _in_inbox(agency: Agency, document_id: str, timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        found = [d for d in await agency.inbox() if d["document_id"] == document_id]
        if found or time.monotonic() > deadline:
            assert len(found) == 1, found
            return found[0]
        await asyncio.sleep(1)


SIZE_MB = 200  # the largest attachment the exchange promises to carry


async def test_a_large_document_survives_the_instance_that_accepted_it(
    tmp_path: Path, hub_database: str
) -> None:
    size_mb = SIZE_MB
    net = SharedHubNetwork(tmp_path / "net", ["H53", "H34"], store=hub_database)
    await asyncio.to_thread(net.start)
    try:
        sender, recipient = net.agencies_of("H53")[0], net.agencies_of("H34")[0]
        path = tmp_path / "ban-scan.pdf"
        digest = await asyncio.to_thread(_write, path, size_mb * MB)
        before = {name: _acceptances(net, name) for name in net.hub_names}
        status, body = await _post_file(net.agency(sender), metadata(sender, [recipient]), path)
        assert status == 202, body
        assert isinstance(body, dict)

        deadline = time.monotonic() + 300
        while (accepting := _accepted_by(net, before)) is None:
            assert time.monotonic() < deadline, "no hub instance accepted the document"
            await asyncio.sleep(0.2)
        net.kill(accepting)  # before it could deliver it, most likely: the other one must

        item = await _in_inbox(net.agency(recipient), body["document_id"], 600)
        attachments = item["attachments"]
        assert isinstance(attachments, list)
        assert [(a["size"], a["sha256"]) for a in attachments] == [(size_mb * MB, digest)]
    finally:
        await asyncio.to_thread(net.stop)
