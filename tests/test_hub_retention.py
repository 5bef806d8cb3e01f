"""The hub drops the bytes of old, delivered packages (serve hub --package-days), as a
real process: what it keeps answering, and what it no longer can."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import os
import sqlite3
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from edoc import envelope, errors
from edoc.hub import retention
from edoc.hub.state import HubState
from edoc.offload import Offload
from edoc.store import open_hub_store, sqlite_url
from edoc.store.hub import Addressee, HubStore, NewPackage, Receipt, Tally
from tests.support.hub import EDOC, HubProcess, NodeClient, document, hub_ca
from tests.support.pki import Ca

H23 = "000.00.00.H23"
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Ca:
    return hub_ca(tmp_path_factory.mktemp("hubca") / "keys")


def _age(store: Path, days: int) -> None:
    """Every package the hub holds accepted ``days`` earlier: time passing, for the test."""
    with sqlite3.connect(store) as db:
        db.execute("UPDATE packages SET accepted_at = accepted_at - ?", (days * DAY_MS,))


def _document_id(package: bytes) -> str:
    return envelope.read_package(io.BytesIO(package)).document.document_id


async def _dropped(receiver: NodeClient, delivery_id: int) -> dict[str, object]:
    """The error a fetch of ``delivery_id`` answers once the hub's first pass ran."""
    for _ in range(100):
        code, answer, _ = await receiver.request("GET", f"/api/v1/deliveries/{delivery_id}/package")
        if code != 200:
            return {"status": code, **answer}
        await asyncio.sleep(0.1)
    raise AssertionError(f"delivery {delivery_id} was still kept")


async def test_old_delivered_packages_lose_their_bytes_and_nothing_else(
    ca: Ca, tmp_path: Path
) -> None:
    hub = HubProcess(tmp_path / "hub", ca.keys.path).start()
    try:
        sender = NodeClient(hub, hub.add_node("H53"))
        receiver = NodeClient(hub, hub.add_node("H23"))
        small = document(ca, to=[H23])
        large = document(ca, to=[H23], files={"scan.pdf": os.urandom(800 * 1024)})  # a file
        waiting = document(ca, to=[H23])
        answers = [(await sender.post(package))[1] for package in (small, large)]
        delivered = await receiver.drain()
        assert sorted(d.hub_id for d in delivered) == sorted(a["id"] for a in answers)
        assert (await sender.post(waiting))[0] == 202  # not collected: still owed
        hub.stop()
        files = set((tmp_path / "hub" / "packages").iterdir())
        assert len(files) == 1  # the large one's

        _age(tmp_path / "hub" / "hub.sqlite", 3)
        hub.options = ("--package-days", "2")
        hub.start()
        refused = await _dropped(receiver, delivered[0].id)
        assert refused["status"] == 404 and "no longer kept" in str(refused["error"])
        for item in delivered[1:]:
            assert (await _dropped(receiver, item.id))["status"] == 404
        assert set((tmp_path / "hub" / "packages").iterdir()) == set()

        # what every recipient has not acknowledged keeps its bytes, whatever its age
        owed = await receiver.collect(wait=2)
        assert len(owed) == 1 and owed[0].package == await receiver.fetch(owed[0].id)
        # a resend of a dropped package is answered as the first time, and not delivered
        code, again, _ = await sender.post(small)
        assert (code, again["id"]) == (202, answers[0]["id"])
        await receiver.ack(owed[0].id)
        assert await receiver.collect() == []
        # the hub's evidence of it says why there is none
        exported = subprocess.run(
            [
                EDOC,
                "archive",
                "export",
                "--hub",
                "--data-dir",
                str(tmp_path / "hub"),
                "--keys-dir",
                str(ca.keys.path),
                "--document",
                _document_id(small),
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert exported.returncode == 1 and "EDOC-ARC-007" in exported.stderr
        assert "no longer keeps" in exported.stderr
        # the statistics still count what was relayed
        code, report, _ = await receiver.request("GET", "/api/v1/stats")
        assert report["totals"]["sent"] == 3 and report["totals"]["received"] == 3
    finally:
        hub.stop()


async def _delivered_files(
    store: HubStore, folder: Path, count: int, now: dt.datetime
) -> list[Path]:
    """``count`` packages kept as files, accepted three days before ``now`` and
    acknowledged; their files."""
    files = [folder / f"{n}.edxml" for n in range(count)]
    for n, file in enumerate(files):
        file.write_bytes(b"<package/>")
        package = NewPackage(
            kind="document",
            sender="000.00.12.H53",
            about=f"d{n}",
            status_code="",
            business_type=0,
            priority=0,
            digest=str(n),
            path=str(file),
            size=10,
            recipients=(Addressee(H23, "H23"),),
        )
        await store.accept(package, now - dt.timedelta(days=3), Tally(now.date(), "", "sent", ""))
    leased = await store.lease("H23", now, dt.timedelta(seconds=60), count, 0)
    received = Tally(now.date(), H23, "received", "")
    await store.acknowledge_checked(
        [d.id for d in leased], now, lambda found: [Receipt(d.id, received) for d in found]
    )
    return files


async def test_a_pass_drops_everything_due_in_changes_of_a_bounded_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "AT_ONCE", 2)
    now = dt.datetime.now(dt.UTC)
    store = await open_hub_store(sqlite_url(tmp_path / "hub.sqlite"))
    offload = Offload(1)
    try:
        files = await _delivered_files(store, tmp_path, 5, now)
        assert await retention.drop_old(store, offload, now - dt.timedelta(days=1)) == 5
        assert [file.exists() for file in files] == [False] * 5
    finally:
        offload.close()
        await store.close()


@pytest.mark.parametrize("turns", range(1, 16))
async def test_a_pass_stopped_midway_leaves_no_file_its_store_forgot(
    tmp_path: Path, turns: int
) -> None:
    now = dt.datetime.now(dt.UTC)
    store = await open_hub_store(sqlite_url(tmp_path / "hub.sqlite"))
    offload = Offload(1)
    try:
        files = await _delivered_files(store, tmp_path, 3, now)
        task = asyncio.create_task(retention.drop_old(store, offload, now))
        for _ in range(turns):  # stopped somewhere in its step, as a hub stopping does
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        held = set((await store.drop_delivered_bytes(retention.EPOCH, now, 10)).files)
        # every file left on disk is one its row still names (dropped by the next pass)
        assert {str(f) for f in files if f.exists()} == held
    finally:
        offload.close()
        await store.close()


class Killed(Exception):
    """The hub killed (SIGKILL, a power cut) once its step's change is committed."""


def _killed(paths: object) -> list[str]:
    raise Killed


async def test_a_pass_removes_the_files_of_a_step_killed_before_it_removed_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = dt.datetime.now(dt.UTC)
    store = await open_hub_store(sqlite_url(tmp_path / "hub.sqlite"))
    offload = Offload(1)
    try:
        files = await _delivered_files(store, tmp_path, 3, now)
        with monkeypatch.context() as killing:
            killing.setattr(retention, "_remove_files", _killed)
            with pytest.raises(Killed):
                await retention.drop_old(store, offload, now)
        assert [file.exists() for file in files] == [True] * 3  # named by no row now
        assert (await store.drop_delivered_bytes(retention.EPOCH, now, 10)).dropped == 0

        # the next pass (a start runs one) has nothing to drop, and removes them
        assert await retention.drop_old(store, offload, now) == 0
        assert [file.exists() for file in files] == [False] * 3
        assert await store.dropped_files("", 10) == []
    finally:
        offload.close()
        await store.close()


async def test_a_file_that_cannot_be_removed_stays_listed_for_the_next_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "AT_ONCE", 2)  # the list is walked past what stays
    now = dt.datetime.now(dt.UTC)
    store = await open_hub_store(sqlite_url(tmp_path / "hub.sqlite"))
    offload = Offload(1)
    try:
        files = await _delivered_files(store, tmp_path, 5, now)
        stuck = {str(files[n]) for n in (0, 1, 3)}
        for path in stuck:  # a file in its place would be removed: one that is a folder
            Path(path).unlink()
            Path(path).mkdir()
        assert await retention.drop_old(store, offload, now) == 5
        assert set(await store.dropped_files("", 10)) == stuck
        async with asyncio.timeout(10):  # a pass walks past what stays, to the list's end
            assert await retention.drop_old(store, offload, now) == 0
        assert set(await store.dropped_files("", 10)) == stuck
        for path in stuck:
            Path(path).rmdir()
        assert await retention.drop_old(store, offload, now) == 0
        assert await store.dropped_files("", 10) == []
    finally:
        offload.close()
        await store.close()


class _FailingStore:
    """A store whose change fails a moment after it began (the database gone)."""

    async def dropped_files(self, after: str, limit: int) -> list[str]:
        return []

    async def drop_delivered_bytes(self, after: object, before: object, limit: int) -> None:
        await asyncio.sleep(0.2)
        raise errors.StorageError("the database is gone")


async def test_a_stop_during_a_step_that_fails_still_stops() -> None:
    """A step's store fault must not take the place of the stop waiting for it:
    drop_forever would take it for a failed pass's and sleep an hour."""
    state = cast(HubState, SimpleNamespace(store=_FailingStore(), offload=None))
    task = asyncio.create_task(retention.drop_forever(state, keep_days=1))
    await asyncio.sleep(0.05)  # in its step
    task.cancel()
    await asyncio.wait({task}, timeout=5)
    assert task.cancelled()
