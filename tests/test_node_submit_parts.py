"""A post of more parts than a package can carry files (edXML: 1000 attachments) is refused
at the first part past them, whichever way the door reads it, its cost bounded by the
parts it takes, not by the parts sent; the loop gets its turns while a post's parts are
read; a package of too many files is refused before anything is packed or signed."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import json
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request
from lxml import etree

from edoc import envelope, errors, metadata, resources, signing
from edoc.envelope import attachments
from edoc.envelope.attachments import MeasuredFile
from edoc.node import compose, formdata, submit
from tests.support import node as node_support
from tests.support.network import metadata as post_metadata
from tests.support.pki import SENDER, Ca, sample_metadata

KON_TUM = "000.00.00.H34"
BOUNDARY = "edoc-parts"
FORM = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def _body(files: int, size: int) -> bytes:
    """A post of the metadata and ``files`` files of ``size`` bytes each."""
    head = f"--{BOUNDARY}\r\nContent-Disposition: form-data;"
    meta = json.dumps(post_metadata(SENDER, [KON_TUM])).encode()
    parts = [f'{head} name="metadata"\r\n\r\n'.encode() + meta]
    parts += [
        f'{head} name="file"; filename="f{n}.txt"\r\n\r\n'.encode() + b"x" * size
        for n in range(files)
    ]
    return b"\r\n".join(parts) + f"\r\n--{BOUNDARY}--\r\n".encode()


class _Counts:
    """The files the door read, the parts it split, the packages it packed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.files = self.split = self.packed = 0
        receive, headers = submit._receive, formdata._plain_headers
        package = compose.document_package

        async def counted_receive(*args: Any) -> Any:
            self.files += 1
            return await receive(*args)

        def counted_headers(*args: Any) -> Any:
            self.split += 1
            return headers(*args)

        def counted_package(*args: Any) -> Any:
            self.packed += 1
            return package(*args)

        monkeypatch.setattr(submit, "_receive", counted_receive)
        monkeypatch.setattr(formdata, "_plain_headers", counted_headers)
        monkeypatch.setattr(compose, "document_package", counted_package)


@pytest.mark.parametrize("size", [1, 700], ids=["in memory (split)", "streamed (over IN_MEMORY)"])
async def test_a_post_of_too_many_parts_is_refused_at_the_first_past_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """Three times the parts a post may have: the files past the most a package carries
    are never read (nor split, where the body is split), nothing is packed."""
    counts = _Counts(monkeypatch)
    body = _body(3 * envelope.MAX_ATTACHMENTS, size)
    assert (len(body) <= submit.IN_MEMORY) == (size == 1)
    async with node_support.door(tmp_path) as door, door.node(with_book=False) as node:
        status, answer, _ = await node.request(
            "POST", "/api/v1/documents", data=io.BytesIO(body), headers=FORM
        )
        assert (status, answer["error"]["code"]) == (413, "EDOC-IN-001"), answer
        assert f"at most {envelope.MAX_ATTACHMENTS} files" in answer["error"]["message"]
        assert counts.files == envelope.MAX_ATTACHMENTS
        assert counts.split == (submit.MAX_PARTS + 1 if size == 1 else 0)
        assert counts.packed == 0
        status, health, _ = await node.request("GET", "/healthz")
        assert status == 200, health


async def test_a_post_of_the_most_files_a_package_carries_is_taken(tmp_path: Path) -> None:
    files = [(f"f{n}.txt", b"x") for n in range(envelope.MAX_ATTACHMENTS)]
    async with node_support.door(tmp_path) as door, door.node(with_book=False) as node:
        status, answer, _ = await node.send(post_metadata(SENDER, [KON_TUM]), files)
        assert status == 202, answer


def _buffered_post(body: bytes) -> Any:
    """A post whose body is all buffered, read by aiohttp's reader (no Content-Length)."""
    content = StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    content.feed_data(body)
    content.feed_eof()
    protocol = mock.Mock(max_field_size=8190, max_headers=128)
    return make_mocked_request("POST", "/", headers=FORM, payload=content, protocol=protocol)


async def test_the_loop_gets_its_turns_while_parts_are_read() -> None:
    """aiohttp's reader never yields while the body is buffered: the door does, every
    YIELD_EVERY parts, so other requests are answered meanwhile."""
    parts = 20 * submit.YIELD_EVERY
    turns = 0

    async def other_work() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    started = turns
    upload = await submit._read_parts(
        _buffered_post(_body(parts - 1, 1)), submit.Staging(Path("/nonexistent")), 2**30
    )
    taken = turns - started
    other.cancel()
    assert len(upload.files) == parts - 1
    assert taken >= parts // submit.YIELD_EVERY - 1


def test_the_most_attachments_are_the_schemas() -> None:
    with resources.schema_file("edxml.xsd") as path:
        schema = etree.parse(str(path))
    counted = schema.xpath(
        "//xs:element[@name='Reference' or @name='Attachment']/@maxOccurs",
        namespaces={"xs": "http://www.w3.org/2001/XMLSchema"},
    )
    assert counted == [str(envelope.MAX_ATTACHMENTS)] * 2


def test_a_package_of_too_many_files_is_refused_before_it_is_packed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before a file is hashed (paths) or anything is signed (files measured on the way)."""
    ca = Ca.create(tmp_path / "keys")
    signed = mock.Mock(wraps=signing.sign_message)
    monkeypatch.setattr(signing, "sign_message", signed)
    hashed = mock.Mock(wraps=attachments.hash_file)
    monkeypatch.setattr(attachments, "hash_file", hashed)
    count = envelope.MAX_ATTACHMENTS + 1
    digest = hashlib.sha256(b"x").hexdigest()
    measured = [MeasuredFile(f"f{n}.txt", b"x", 1, digest) for n in range(count)]
    paths = [tmp_path / f"f{n}.txt" for n in range(count)]
    for path in paths:
        path.write_bytes(b"x")
    now = dt.datetime.now(dt.UTC)
    data = metadata.check(sample_metadata())
    for files in (measured, paths):
        with pytest.raises(errors.TooLarge, match=f"at most {envelope.MAX_ATTACHMENTS}"):
            compose.document_package(ca.keys, dict(data), files, tmp_path / "p.edxml", now)
    assert signed.call_count == hashed.call_count == 0
