"""Reading what a node keeps, on both store backends: the packages of a document, the
documents of a day, and the packages kept after a mark (for batched time stamps)."""

from __future__ import annotations

import datetime as dt
import hashlib
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from edoc import errors
from edoc.archive import export, stored
from edoc.archive.evidence import Direction
from edoc.archive.stored import (
    Mark,
    PackageRef,
    StoredEvidence,
    kept_messages,
    open_stored,
    package_digest,
)
from edoc.model import MessageKind
from edoc.store import open_hub_store, open_node_store, sqlite_url
from edoc.store.node import NewOutgoing
from tests.archive import support
from tests.store import postgres
from tests.support.pki import SENDER, Ca

AT = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    for urls in postgres.databases("archive"):
        yield urls["archive"]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "node.sqlite")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def kept(store_url: str, ca: Ca) -> AsyncIterator[tuple[StoredEvidence, str, bytes, bytes]]:
    if not store_url.startswith("sqlite"):
        await postgres.empty(store_url)
    document = support.document_package(ca, number=7)
    status = support.status_package(ca, document)
    about = await support.keep(store_url, document, status, AT)
    stored = await open_stored(store_url)
    try:
        yield stored, about, document, status
    finally:
        await stored.close()


async def test_the_packages_of_a_document_each_side(
    kept: tuple[StoredEvidence, str, bytes, bytes],
) -> None:
    stored, about, document, status = kept
    received = await kept_messages(stored, support.RECIPIENT, about)
    assert [(m.direction, m.kind, m.package) for m in received] == [
        (Direction.RECEIVED, MessageKind.DOCUMENT, document),
        (Direction.SENT, MessageKind.STATUS, status),
    ]
    sent = await kept_messages(stored, SENDER, about)
    assert [(m.direction, m.kind, m.status_code) for m in sent] == [
        (Direction.SENT, MessageKind.DOCUMENT, ""),
        (Direction.RECEIVED, MessageKind.STATUS, "01"),
    ]
    assert sent[0].at == AT
    with pytest.raises(errors.NothingToArchive):
        await kept_messages(stored, "000.00.00.G01", about)


async def test_the_documents_of_a_day(kept: tuple[StoredEvidence, str, bytes, bytes]) -> None:
    stored, about, _, _ = kept
    hour = dt.timedelta(hours=1)
    assert await stored.documents(SENDER, AT - hour, AT + hour) == [about]
    assert await stored.documents(support.RECIPIENT, AT - hour, AT + hour) == [about]
    assert await stored.documents(SENDER, AT + hour, AT + 2 * hour) == []


async def test_the_packages_after_a_mark(kept: tuple[StoredEvidence, str, bytes, bytes]) -> None:
    stored, _, document, status = kept
    refs, mark = await stored.kept_after(Mark(0, 0), 100)
    packages = [support.package_bytes(ref) for ref in refs]
    assert sorted(packages) == sorted([document, status, document, status])
    assert await stored.kept_after(mark, 100) == ([], mark)
    first, _ = await stored.kept_after(Mark(0, 0), 1)
    assert len(first) == 2  # one of each table


# a received package as the node writes it (numbered as it is written)
_RECEIVED = """
INSERT INTO inbox (recipient, sender, kind, document_id, business_type, status_code, path,
    summary, received_at, body)
VALUES ('000.00.00.H34', '000.00.12.H53', 'document', $1, 0, '', '', '{}', $2,
    convert_to($1, 'UTF8'))
"""


async def test_a_package_committed_after_a_later_one_is_not_passed_by(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node receives side by side: a package numbered first may be committed after
    one numbered later. A stamping pass in between must not move the mark past it (it
    would never be stamped): it fails (logged, for the next pass) while that change is
    under way."""
    monkeypatch.setattr(stored, "SETTLING", 0.2)
    await (await open_node_store(postgres_url)).close()
    await postgres.empty(postgres_url)
    first, second = [await asyncpg.connect(postgres_url) for _ in range(2)]
    reader = await open_stored(postgres_url)
    try:
        async with first.transaction():
            await first.execute(_RECEIVED, "D1", AT)  # numbered 1, not yet committed
            await second.execute(_RECEIVED, "D2", AT)  # numbered 2, committed
            with pytest.raises(errors.StorageError, match="under way"):
                await reader.kept_after(Mark(0, 0), 100)
        refs, mark = await reader.kept_after(Mark(0, 0), 100)
        assert ([support.package_bytes(r) for r in refs], mark) == ([b"D1", b"D2"], Mark(0, 2))
    finally:
        await reader.close()
        for conn in (first, second):
            await conn.close()


async def test_an_unknown_store_is_refused(tmp_path: Path) -> None:
    with pytest.raises(errors.UnknownStore):
        await open_stored(sqlite_url(tmp_path / "none.sqlite"))
    with pytest.raises(errors.UnknownStore):
        await open_stored("mysql://somewhere")


async def test_the_other_services_store_is_refused(tmp_path: Path) -> None:
    """A hub's store given for a node's (`edoc archive export --store`) was read until a
    node's table was missing: a fault (EDOC-000, exit 3)."""
    url = sqlite_url(tmp_path / "hub.sqlite")
    await (await open_hub_store(url)).close()
    with pytest.raises(errors.UnknownStore, match=r"no node store at .*\(it holds a hub store\)"):
        await open_stored(url)


async def test_a_package_file_gone_is_said(ca: Ca, tmp_path: Path) -> None:
    """A large package is kept in a file; if the file is gone, the export says which."""
    url = sqlite_url(tmp_path / "node.sqlite")
    store = await open_node_store(url)
    gone = tmp_path / "outgoing" / "1.edxml"
    try:
        await store.add_outgoing(
            NewOutgoing(
                MessageKind.DOCUMENT, SENDER, "d", "", None, 0, str(gone), {},
                (support.RECIPIENT,), (), None,
            ),
            AT,
            (),
        )  # fmt: skip
    finally:
        await store.close()
    stored = await open_stored(url)
    try:
        kept = await kept_messages(stored, SENDER, "d")
        assert [m.package for m in kept] == [gone]  # (its file is read where it is written)
        target = tmp_path / "evidence.asice"
        with pytest.raises(errors.StorageError, match=f"gone from {gone}"):
            await export.export_document(stored, ca.keys, SENDER, "d", target, AT)
        assert not [*tmp_path.glob("evidence.asice*"), *tmp_path.glob(".evidence.asice*")]
    finally:
        await stored.close()


def test_a_kept_package_is_hashed_without_being_read_whole(tmp_path: Path) -> None:
    """Stamping hashes every kept package: a large one's file is read in chunks (it was
    read whole: a 200 MB document's package, 270 MB, in the memory of each service)."""
    large = tmp_path / "large.edxml"
    large.write_bytes(b"<edXML/>" * (2 * 1024 * 1024))  # 16 MB
    tracemalloc.start()
    try:
        digest = package_digest(PackageRef(None, str(large)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest == hashlib.sha256(large.read_bytes()).digest()
    assert peak < 2 * 1024 * 1024
    assert (
        package_digest(PackageRef(b"kept in its row", ""))
        == hashlib.sha256(b"kept in its row").digest()
    )
    with pytest.raises(errors.StorageError, match="gone from"):
        package_digest(PackageRef(None, str(tmp_path / "none.edxml")))
