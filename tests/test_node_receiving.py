"""What a node keeps of a package it received: each attachment under its own manifest
entry, whichever order the bodies came in (the manifest is signed, their order is not),
kept as files beside a package in a file, or read again from a package kept in the store.
(Receiving over the network, and downloading both kinds, is tests/test_node.py.) An
attachment's ContentType is the sender's word: served only if it is a media type.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from edoc import envelope, errors
from edoc.node import app as node_app
from edoc.node import receiving
from edoc.node.state import NodeState
from edoc.store.node import InboxAttachment
from tests.support.node import door
from tests.support.pki import SENDER, Ca, Clock, signed_root, wire

BODIES = {"quyet-dinh.pdf": b"%PDF-1.4 quyet dinh\n" * 40, "phu-luc.txt": b"phu luc\n" * 7}


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Ca:
    return Ca.create(tmp_path_factory.mktemp("receiving") / "keys")


def _package(ca: Ca, folder: Path, reversed_bodies: bool) -> bytes:
    """A signed document with BODIES attached in that order; its bodies on the wire in
    the manifest's order or the other way round."""
    paths = []
    for name, body in BODIES.items():
        (path := folder / name).write_bytes(body)
        paths.append(path)
    files: list[tuple[Any, Path]] = envelope.attachments_from_files(paths)
    root = signed_root(ca, files=files)
    return wire(root, files[::-1] if reversed_bodies else files)


def _kept(ca: Ca, source: bytes | Path, folder: Path) -> receiving.Kept:
    state = cast(NodeState, SimpleNamespace(keys=ca.keys))
    return receiving._verify_and_keep(state, source, folder, [])


@pytest.mark.parametrize("reversed_bodies", [False, True])
def test_a_package_in_memory_is_kept_once_and_its_attachments_read_from_it(
    ca: Ca, tmp_path: Path, reversed_bodies: bool
) -> None:
    package = _package(ca, tmp_path, reversed_bodies)
    item = _kept(ca, package, tmp_path / "unused").inbox_item("000.00.00.H34")
    assert item.body == package and not (tmp_path / "unused").exists()
    for entry, (name, body) in zip(item.attachments, BODIES.items(), strict=True):
        assert (entry.name, entry.size, entry.path, entry.body) == (name, len(body), "", None)
        assert receiving.attachment_in(package, entry) == body
        assert entry.sha256 == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize("reversed_bodies", [False, True])
def test_a_package_in_a_file_keeps_each_attachment_under_its_entry(
    ca: Ca, tmp_path: Path, reversed_bodies: bool
) -> None:
    source = tmp_path / "incoming.edxml"
    source.write_bytes(_package(ca, tmp_path, reversed_bodies))
    item = _kept(ca, source, tmp_path / "inbox" / "one").inbox_item("000.00.00.H34")
    assert item.body is None and item.path == str(tmp_path / "inbox" / "one" / receiving.PACKAGE)
    for entry, (name, body) in zip(item.attachments, BODIES.items(), strict=True):
        assert entry.name == name and Path(entry.path).read_bytes() == body


def _entries(ca: Ca, package: bytes, folder: Path) -> tuple[InboxAttachment, ...]:
    return _kept(ca, package, folder).inbox_item("000.00.00.H34").attachments


def test_a_stored_package_altered_since_is_refused_on_download(ca: Ca, tmp_path: Path) -> None:
    """Read again, the package is held to its manifest again: a body changed in the store
    is the store's failure, never bytes under another file's name."""
    package = _package(ca, tmp_path, False)
    altered = package.replace(
        base64.b64encode(BODIES["phu-luc.txt"]), base64.b64encode(b"PHU LUC\n" * 7)
    )
    assert altered != package
    with pytest.raises(errors.StorageError, match="differs from the manifest"):
        receiving.attachment_in(altered, _entries(ca, package, tmp_path)[1])


def test_a_package_replaced_in_the_store_is_refused_on_download(ca: Ca, tmp_path: Path) -> None:
    """Another whole package, valid in itself, does not hold the files the entries name."""
    entries = _entries(ca, _package(ca, tmp_path, False), tmp_path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "khac.txt").write_bytes(b"another document")
    files: list[tuple[Any, Path]] = envelope.attachments_from_files(
        [tmp_path / "other" / "khac.txt"]
    )
    other = wire(signed_root(ca, files=files), files)
    for entry in entries:  # one with another body at its place, one beyond its manifest
        with pytest.raises(errors.StorageError, match=f"does not hold attachment {entry.n}"):
            receiving.attachment_in(other, entry)


def _as_earlier_releases_stored(
    data_dir: Path, package: bytes | None, rows: list[tuple[InboxAttachment, bytes]]
) -> None:
    """Inbox item 7 of the sender's agency as a release before 2026-12 stored it: its
    package (or none) and each attachment's bytes in the attachment's own row."""
    connection = sqlite3.connect(data_dir / "node.sqlite")
    with connection:
        connection.execute(
            "INSERT INTO inbox (id, recipient, sender, kind, document_id, business_type,"
            " status_code, path, summary, received_at, body)"
            " VALUES (7, ?, '000.00.00.H34', 'document', 'doc-1', 0, '', '', '{}', 0, ?)",
            (SENDER, package),
        )
        connection.executemany(
            "INSERT INTO inbox_attachments VALUES (7, ?, ?, 'text/plain', ?, ?, '', ?)",
            [(e.n, e.name, e.size, e.sha256, body) for e, body in rows],
        )
    connection.close()


async def _downloads(
    tmp_path: Path, package: bytes | None, rows: list[tuple[InboxAttachment, bytes]]
) -> list[tuple[int, object]]:
    """What the agency downloads of each of ``rows``' attachments from such a store."""
    async with door(tmp_path / "node-data") as opened:
        async with opened.node(with_book=False):
            pass  # the store, created
        _as_earlier_releases_stored(opened.config.data_dir, package, rows)
        async with opened.node(with_book=False) as node:
            answers = [
                await node.request("GET", f"/api/v1/inbox/7/attachments/{entry.n}")
                for entry, _ in rows
            ]
    return [(answer.status, answer.body) for answer in answers]


async def test_an_attachment_an_earlier_release_stored_apart_is_still_served(
    tmp_path: Path,
) -> None:
    """Stores written before a package in the store held its attachments alone keep each
    attachment's bytes in its own row; the node serves those."""
    body = b"kept once"
    entry = InboxAttachment(
        0, "cu.txt", "text/plain", len(body), hashlib.sha256(body).hexdigest(), ""
    )
    assert await _downloads(tmp_path, None, [(entry, body)]) == [(200, body)]


async def test_a_body_an_earlier_release_filed_under_another_entry_is_read_from_its_package(
    ca: Ca, tmp_path: Path
) -> None:
    """Earlier releases paired bodies and entries by position: a package whose bodies came
    in another order than its manifest left each body in the row of the other entry. The
    node serves each entry's own file, from the package."""
    package = _package(ca, tmp_path, True)
    entries = _entries(ca, package, tmp_path)
    swapped = list(BODIES.values())[::-1]  # as the bodies came: by position
    rows = list(zip(entries, swapped, strict=True))
    assert await _downloads(tmp_path, package, rows) == [(200, b) for b in BODIES.values()]


def _typed_package(ca: Ca, folder: Path, content_type: str) -> bytes:
    """A signed document with one attachment its sender says is of ``content_type``."""
    (path := folder / "to-trinh.pdf").write_bytes(b"%PDF-1.4 to trinh\n")
    files: list[tuple[Any, Path]] = [
        (dataclasses.replace(entry, content_type=content_type), body)
        for entry, body in envelope.attachments_from_files([path])
    ]
    return wire(signed_root(ca, files=files), files)


OCTETS = "application/octet-stream"
QUOTING = 'text/plain; charset=utf-8; format="a \\"b\\""'


@pytest.mark.parametrize("in_a_file", [False, True], ids=["in-the-store", "in-a-file"])
@pytest.mark.parametrize(
    ("said", "served"),
    [
        # a header of its own: aiohttp refused to write the answer, outside edoc's error
        # handling (the agency got an empty reply, the log a traceback), every time
        pytest.param("text/html\r\nX-Injected: 1", OCTETS, id="crlf-header"),
        pytest.param("application/pdf\nX-Injected: 1", OCTETS, id="lf-header"),
        pytest.param("pdf", OCTETS, id="no-subtype"),
        pytest.param("text/plain; charset=ệ", OCTETS, id="not-ascii"),
        pytest.param("application/pdf", "application/pdf", id="media-type"),
        pytest.param(QUOTING, QUOTING, id="quoted-parameter"),
    ],
)
async def test_an_attachment_is_served_as_a_media_type_only(
    tmp_path: Path, said: str, served: str, in_a_file: bool
) -> None:
    async with door(tmp_path) as opened, opened.node(with_book=False) as node:
        package = _typed_package(Ca(opened.hub.keys, Clock()), tmp_path, said)
        source: bytes | Path = package
        if in_a_file:
            (source := opened.config.data_dir / "incoming.edxml").write_bytes(package)
        await receiving.receive(node.client.app[node_app.STATE], source, [SENDER])
        (item,) = await node.inbox()
        assert item["attachments"][0]["content_type"] == said  # as the sender said it
        answer = await node.request("GET", f"/api/v1/inbox/{item['id']}/attachments/0")
    assert (answer.status, answer.body) == (200, b"%PDF-1.4 to trinh\n")
    assert answer.headers["Content-Type"] == served
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert "X-Injected" not in answer.headers
