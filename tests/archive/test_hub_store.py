"""The hub's evidence read from its store (edoc.archive.hub), on SQLite and PostgreSQL:
the packages after a mark, and what the hub accepted about a document."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest
from asyncpg.transaction import Transaction

from edoc import errors
from edoc.archive import hub, stored
from edoc.archive.hub import HubRow, open_hub_packages
from edoc.archive.stored import Mark, PackageRef
from edoc.hub import retention
from edoc.hub.retention import EPOCH
from edoc.offload import Offload
from edoc.store import open_hub_store, open_node_store, sqlite_url
from edoc.store.hub import Addressee, NewPackage, Receipt, Tally
from tests.archive import support
from tests.store import postgres
from tests.support.pki import Ca

NOW = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)
DOCUMENT = NewPackage(
    kind="document",
    sender="000.00.12.H53",
    about="D1",
    status_code="",
    business_type=0,
    priority=0,
    digest="1",
    path="",
    size=10,
    recipients=(Addressee("000.00.00.H34", "H34"),),
    body=b"d" * 10,
)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    for urls in postgres.databases("archivehub"):
        yield urls["archivehub"]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "hub.sqlite")
    url: str = request.getfixturevalue("postgres_url")
    return url


async def test_the_hubs_packages_after_a_mark_and_about_a_document(
    store_url: str, tmp_path: Path
) -> None:
    store = await open_hub_store(store_url)
    try:
        if not store_url.startswith("sqlite"):
            await postgres.empty(store_url)
        large = tmp_path / "2.edxml"
        large.write_bytes(b"a status kept in a file")
        status = replace(
            DOCUMENT,
            kind="status",
            sender="000.00.00.H34",
            status_code="01",
            digest="2",
            path=str(large),
            body=None,
            recipients=(Addressee("000.00.12.H53", "H53"),),
        )
        tally = Tally(NOW.date(), DOCUMENT.sender, "sent", "")
        await store.accept(DOCUMENT, NOW, tally)
        await store.accept(replace(DOCUMENT, about="D2", digest="3"), NOW, tally)
        await store.accept(status, NOW + dt.timedelta(seconds=1), tally)
    finally:
        await store.close()
    packages = await open_hub_packages(store_url)
    try:
        refs, mark = await packages.kept_after(Mark(0, 0), 100)
        assert [support.package_bytes(r) for r in refs] == [
            b"d" * 10,
            b"d" * 10,
            large.read_bytes(),
        ]
        assert mark == Mark(3, 0)
        assert await packages.kept_after(mark, 100) == ([], mark)
        first, moved = await packages.kept_after(Mark(0, 0), 1)
        assert (len(first), moved) == (1, Mark(1, 0))
        rows = await packages.about("D1")
        assert [(r.kind, r.status_code, r.accepted_at) for r in rows] == [
            ("document", "", NOW),
            ("status", "01", NOW + dt.timedelta(seconds=1)),
        ]
        assert rows[1].ref == PackageRef(None, str(large))
        assert await packages.about("unknown") == []
    finally:
        await packages.close()


# a package as another instance writes it (numbered as it is written)
_WRITTEN_ASIDE = """
INSERT INTO packages (kind, sender, about, status_code, business_type, priority, digest,
    path, size, accepted_at, body)
VALUES ('document', '000.00.12.H53', $1, '', 0, 0, $1, '', 3, $2, 'abc')
"""


async def test_a_package_committed_after_a_later_one_is_not_passed_by(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Instances accept side by side: a package numbered first may be committed after
    one numbered later. A stamping pass in between must not move the mark past it (it
    would never be stamped): it waits for the change under way, and fails (logged, for
    the next pass) if that one outlasts the wait."""
    monkeypatch.setattr(stored, "SETTLING", 1.0)
    tally = Tally(NOW.date(), DOCUMENT.sender, "sent", "")
    store = await open_hub_store(postgres_url)
    aside = await asyncpg.connect(postgres_url)
    packages = await open_hub_packages(postgres_url)
    try:
        await postgres.empty(postgres_url)
        async with aside.transaction():
            await aside.execute(_WRITTEN_ASIDE, "D0", NOW)  # numbered 1, not yet committed
            await store.accept(DOCUMENT, NOW, tally)  # numbered 2, committed
            with pytest.raises(errors.StorageError, match="under way"):
                await packages.kept_after(Mark(0, 0), 100)
        refs, mark = await packages.kept_after(Mark(0, 0), 100)
        assert ([support.package_bytes(r) for r in refs], mark) == (
            [b"abc", DOCUMENT.body],
            Mark(2, 0),
        )

        async def commit_soon(writing: Transaction) -> None:
            await asyncio.sleep(0.05)
            await writing.commit()

        writing = aside.transaction()
        await writing.start()
        await aside.execute(_WRITTEN_ASIDE, "D3", NOW)
        await store.accept(replace(DOCUMENT, about="D4", digest="4"), NOW, tally)
        committing = asyncio.create_task(commit_soon(writing))
        refs, mark = await packages.kept_after(mark, 100)  # waits for it, then reads both
        await committing
        assert (len(refs), mark) == (2, Mark(4, 0))
    finally:
        await packages.close()
        await aside.close()
        await store.close()


async def test_no_hub_store_is_said(tmp_path: Path) -> None:
    with pytest.raises(errors.UnknownStore):
        await open_hub_packages(sqlite_url(tmp_path / "hub.sqlite"))
    with pytest.raises(errors.UnknownStore):
        await open_hub_packages("mysql://somewhere")


async def test_a_nodes_store_is_refused(tmp_path: Path) -> None:
    """As the hub's (`edoc archive export --hub --store`): read until a hub's table was
    missing, a fault (EDOC-000, exit 3)."""
    url = sqlite_url(tmp_path / "node.sqlite")
    await (await open_node_store(url)).close()
    with pytest.raises(errors.UnknownStore, match=r"no hub store at .*\(it holds a node store\)"):
        await open_hub_packages(url)


async def test_a_package_whose_bytes_were_dropped_is_not_stamped(store_url: str) -> None:
    store = await open_hub_store(store_url)
    try:
        if not store_url.startswith("sqlite"):
            await postgres.empty(store_url)
        tally = Tally(NOW.date(), DOCUMENT.sender, "sent", "")
        await store.accept(DOCUMENT, NOW, tally)
        await store.accept(replace(DOCUMENT, about="D2", digest="2"), NOW, tally)
        leased = await store.lease("H34", NOW, dt.timedelta(seconds=60), 1, 0)
        received = Tally(NOW.date(), "000.00.00.H34", "received", "")
        await store.acknowledge_checked(
            [leased[0].id], NOW, lambda found: [Receipt(d.id, received) for d in found]
        )
        dropped = await store.drop_delivered_bytes(EPOCH, NOW + dt.timedelta(days=1), 10)
        assert (dropped.dropped, dropped.files) == (1, ())
    finally:
        await store.close()
    packages = await open_hub_packages(store_url)
    try:
        refs, mark = await packages.kept_after(Mark(0, 0), 100)
        assert ([support.package_bytes(r) for r in refs], mark) == ([DOCUMENT.body], Mark(2, 0))
        (row,) = await packages.about("D1")
        assert row.ref == PackageRef(None, "")
    finally:
        await packages.close()


async def _kept_in_a_file(store_url: str, folder: Path, acknowledged: bool) -> Path:
    """Document D1 kept in a file (its path), accepted at NOW and maybe acknowledged."""
    store = await open_hub_store(store_url)
    try:
        if not store_url.startswith("sqlite"):
            await postgres.empty(store_url)
        kept = folder / "1.edxml"
        kept.write_bytes(b"a document kept in a file")
        document = replace(DOCUMENT, path=str(kept), body=None)
        await store.accept(document, NOW, Tally(NOW.date(), DOCUMENT.sender, "sent", ""))
        if acknowledged:
            leased = await store.lease("H34", NOW, dt.timedelta(seconds=60), 1, 0)
            received = Tally(NOW.date(), "000.00.00.H34", "received", "")
            await store.acknowledge_checked(
                [leased[0].id], NOW, lambda found: [Receipt(d.id, received) for d in found]
            )
        return kept
    finally:
        await store.close()


async def test_a_package_dropped_while_its_evidence_is_read_is_said_no_longer_kept(
    ca: Ca, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retention pass between the read of the rows and that of their files: the file
    gone is what the pass dropped, not a store that failed (EDOC-STORE-001)."""
    kept = await _kept_in_a_file(store_url, tmp_path, acknowledged=True)
    store = await open_hub_store(store_url)
    offload = Offload(1)
    try:
        packages = await open_hub_packages(store_url)
        read = packages.about

        async def read_then_dropped(document_id: str) -> list[HubRow]:
            rows = await read(document_id)
            await retention.drop_old(store, offload, NOW + dt.timedelta(days=1))
            return rows

        monkeypatch.setattr(packages, "about", read_then_dropped)
        try:
            with pytest.raises(errors.NothingToArchive, match="no longer keeps"):
                await hub.export_document(packages, ca.keys, "hub", "D1", tmp_path / "out", NOW)
        finally:
            await packages.close()
        assert not kept.exists()
        assert not [*tmp_path.glob("out*"), *tmp_path.glob(".out*")]
    finally:
        offload.close()
        await store.close()


async def test_a_file_gone_from_a_row_that_still_names_it_is_the_stores_fault(
    ca: Ca, store_url: str, tmp_path: Path
) -> None:
    (await _kept_in_a_file(store_url, tmp_path, acknowledged=False)).unlink()
    packages = await open_hub_packages(store_url)
    try:
        with pytest.raises(errors.StorageError, match="is gone"):
            await hub.export_document(packages, ca.keys, "hub", "D1", tmp_path / "out", NOW)
    finally:
        await packages.close()
    assert not [*tmp_path.glob("out*"), *tmp_path.glob(".out*")]
