"""The agency door keeps a post's small files in memory and measures every file once, as
it arrives: no staging folder for a small post, bounded memory for a large one, and the
package carries exactly the bytes posted under the digests measured on the way."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import pytest

from edoc import envelope, errors, metadata
from edoc.envelope.attachments import KeptInMemory, MeasuredFile
from edoc.node import compose, formdata, submit
from tests.support import node as node_support
from tests.support.network import metadata as post_metadata
from tests.support.pki import SENDER, Ca, sample_metadata

KON_TUM = "000.00.00.H34"


def _measured(name: str, body: Path | bytes) -> MeasuredFile:
    data = body.read_bytes() if isinstance(body, Path) else body
    return MeasuredFile(name, body, len(data), hashlib.sha256(data).hexdigest())


@pytest.mark.parametrize("sizes", [[5, 4000], [5, 600_000]], ids=["kept in store", "a file"])
def test_measured_files_pack_as_the_files_themselves(tmp_path: Path, sizes: list[int]) -> None:
    """Byte for byte the package the same files give when read and hashed from disk."""
    ca = Ca.create(tmp_path / "keys")
    data = metadata.check(sample_metadata())
    paths = []
    for n, size in enumerate(sizes):
        paths.append(tmp_path / f"tệp-{n}.pdf")
        paths[-1].write_bytes(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
    measured = [_measured(paths[0].name, paths[0].read_bytes()), _measured(paths[1].name, paths[1])]
    now = dt.datetime.now(dt.UTC)
    packed = [
        compose.document_package(ca.keys, dict(data), files, tmp_path / f"{label}.edxml", now)
        for label, files in (("paths", paths), ("measured", measured))
    ]
    assert packed[0][0] == packed[1][0]
    if sizes[1] <= compose.IN_STORE:
        assert packed[0][2] is not None and packed[0][2] == packed[1][2]
    else:
        assert packed[0][2] is None is packed[1][2]
        wire = (tmp_path / "paths.edxml").read_bytes()
        assert wire == (tmp_path / "measured.edxml").read_bytes()


def test_paths_and_measured_files_are_not_mixed(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        compose._attachments([tmp_path / "a.txt", _measured("b.txt", b"b")])  # type: ignore[arg-type]


class _Spy:
    """Counts the folders and files the door opens for uploads."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened: list[str] = []
        self.folders: set[Path] = set()
        real = submit.Staging.open

        def open_(staging: submit.Staging, name: str) -> Any:
            handle = real(staging, name)
            self.opened.append(name)
            assert staging.folder is not None
            self.folders.add(staging.folder)
            return handle

        monkeypatch.setattr(submit.Staging, "open", open_)


async def _package_bodies(door: node_support.Door, node: node_support.Node) -> dict[str, bytes]:
    """The attachments of the first package the node sent to the (fake) hub."""
    await node.until(lambda: door.hub.packages)
    bodies: dict[str, KeptInMemory] = {}
    envelope.read_package(
        door.hub.packages[0], lambda _cid, name: bodies.setdefault(name, KeptInMemory())
    )
    return {name: body.getvalue() for name, body in bodies.items()}


async def test_a_small_post_makes_no_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It is read whole and split (formdata.split), its files kept as they were cut."""
    spy = _Spy(monkeypatch)
    split: list[object] = []
    real_split = formdata.split

    def recorded(*args: Any) -> object:
        split.append(real_split(*args))
        return split[-1]

    monkeypatch.setattr(formdata, "split", recorded)
    files = [("Kế hoạch.pdf", b"%PDF-1.7 " * 100), ("phu-luc.txt", "Phụ lục".encode())]
    async with node_support.door(tmp_path) as door, door.node(with_book=False) as node:
        status, answer, _ = await node.send(post_metadata(SENDER, [KON_TUM]), files)
        assert status == 202, answer
        assert spy.opened == []
        assert len(split) == 1 and isinstance(split[0], formdata.HeldForm)
        _, document, _ = await node.request("GET", f"/api/v1/documents/{answer['id']}")
        assert [
            (a["name"], a["size"], a["sha256"]) for a in document["summary"]["attachments"]
        ] == [(name, len(body), hashlib.sha256(body).hexdigest()) for name, body in files]
        assert await _package_bodies(door, node) == dict(files)


async def test_a_large_post_goes_to_disk_past_what_memory_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first file stays in memory, the second outgrows it on the way, the third is
    written from its first byte; the folder is gone after, the bytes and digests kept."""
    monkeypatch.setattr(submit, "IN_MEMORY", 1000)
    spy = _Spy(monkeypatch)
    files = [("a.bin", b"a" * 600), ("b.bin", bytes(range(256)) * 3), ("c.bin", b"c" * 5000)]
    async with node_support.door(tmp_path) as door, door.node(with_book=False) as node:
        status, answer, _ = await node.send(post_metadata(SENDER, [KON_TUM]), files)
        assert status == 202, answer
        assert spy.opened == ["b.bin", "c.bin"] and len(spy.folders) == 1
        assert not any(folder.exists() for folder in spy.folders)
        _, document, _ = await node.request("GET", f"/api/v1/documents/{answer['id']}")
        assert [(a["name"], a["sha256"]) for a in document["summary"]["attachments"]] == [
            (name, hashlib.sha256(body).hexdigest()) for name, body in files
        ]
        assert await _package_bodies(door, node) == dict(files)


async def test_a_refused_post_leaves_no_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(submit, "IN_MEMORY", 10)
    spy = _Spy(monkeypatch)
    files = [("a.bin", b"a" * 100), ("b.bin", b"")]
    async with node_support.door(tmp_path) as door, door.node(with_book=False) as node:
        status, answer, _ = await node.send(post_metadata(SENDER, [KON_TUM]), files)
        assert (status, answer["error"]["code"]) == (422, "EDOC-NODE-004")
        assert spy.opened == ["a.bin"]  # an empty file has no byte to write
        assert not any(folder.exists() for folder in spy.folders)


class _EndlessPart:
    """A metadata part that never ends: what was read of it is counted."""

    def __init__(self) -> None:
        self.read = 0

    async def read_chunk(self, size: int = 8192) -> bytes:
        self.read += size
        return b"{" * size


async def test_a_metadata_part_is_refused_once_it_outgrows_its_limit() -> None:
    part = _EndlessPart()
    with pytest.raises(errors.TooLarge):
        await submit._metadata_part(part)  # type: ignore[arg-type]
    assert part.read <= metadata.MAX_METADATA_BYTES + 8192
