"""Hostile containers and day archives: `edoc archive verify` refuses each with its
EDOC-ARC code and exit 1 (never an unexpected fault, exit 3), and reads no more of a ZIP
than its entries say they hold, whatever their compressed bytes unfold to."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import struct
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from asn1crypto import cms
from click.testing import CliRunner

from edoc import errors
from edoc.archive import container, day
from edoc.archive.verify import verify_container
from edoc.cli import main
from tests.archive import support
from tests.support.pki import Ca

MIB = 1024 * 1024
ORG = support.RECIPIENT
DAY = dt.date(2026, 12, 1)


@pytest.fixture(scope="module")
def made(ca: Ca) -> bytes:
    document = support.document_package(ca)
    return support.build(ca, document, support.status_package(ca, document))


@pytest.fixture(scope="module")
def archive(ca: Ca, made: bytes) -> bytes:
    """A day archive of one container."""
    with container.opened(made) as parts:
        about = str(parts.description()["document_id"])
    return day.build(ORG, DAY, [(about, made)], None, support.stamper(ca), ca.clock())


def _verify(ca: Ca, data: bytes, tmp_path: Path) -> tuple[int, str]:
    path = tmp_path / "evidence.asice"
    path.write_bytes(data)
    root = str(ca.keys.root_path)
    result = CliRunner().invoke(main, ["archive", "verify", str(path), "--root", root])
    return result.exit_code, result.output


# --- ZIP surgery: what a forger does to a container's bytes ---------------------------------
def _central(data: bytes, name: str) -> int:
    """The offset of ``name``'s central directory record."""
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        length = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46 : at + 46 + length] == name.encode():
            return at
        at = data.find(b"PK\x01\x02", at + 4)
    raise AssertionError(f"no {name} in the central directory")


def _local(data: bytes, name: str) -> int:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.getinfo(name).header_offset


def _set_flag_and_method(data: bytes, name: str, flag: int = 0, method: int | None = None) -> bytes:
    """``name``'s general purpose flag bits or'ed with ``flag``, its method set, in both
    its headers."""
    out = bytearray(data)
    for at, flags, how in ((_local(data, name), 6, 8), (_central(data, name), 8, 10)):
        struct.pack_into("<H", out, at + flags, struct.unpack_from("<H", out, at + flags)[0] | flag)
        if method is not None:
            struct.pack_into("<H", out, at + how, method)
    return bytes(out)


def _flipped(data: bytes, name: str) -> bytes:
    """``name``'s compressed bytes damaged (a few bits, as a bad disk or download does)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo(name)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 5
    out = bytearray(data)
    out[start] ^= 0xFF
    out[start + 1] ^= 0xFF
    return bytes(out)


def _recompressed(data: bytes, name: str, compression: int) -> bytes:
    return _rezipped(data, {name: compression})


def _rezipped(data: bytes, compression: dict[str, int]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for entry in source.infolist():
            content = source.read(entry)
            entry.compress_type = compression.get(entry.filename, entry.compress_type)
            target.writestr(entry, content)
    return out.getvalue()


def _with_hidden_tail(data: bytes, name: str, tail: int) -> bytes:
    """``name``'s deflate stream made to unfold to ``tail`` zero bytes more than its
    headers say (size and CRC-32 left those of its true content): zipfile stops at the
    size said, but a reader that asks for "all of it" first unfolds the whole stream."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        content = archive.read(name)
    squeezer = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = squeezer.compress(content)
    zeros = bytes(MIB)
    for _ in range(tail // MIB):
        stream += squeezer.compress(zeros)
    stream += squeezer.flush()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for entry in source.infolist():
            if entry.filename == name:
                entry.compress_type = zipfile.ZIP_STORED  # written as is, then relabelled
                target.writestr(entry, stream)
            else:
                target.writestr(entry, source.read(entry))
    written = out.getvalue()
    forged = bytearray(written)
    for at, fields in ((_local(written, name), 8), (_central(written, name), 10)):
        struct.pack_into("<H", forged, at + fields, zipfile.ZIP_DEFLATED)
        struct.pack_into("<I", forged, at + fields + 6, zlib.crc32(content))
        struct.pack_into("<I", forged, at + fields + 14, len(content))  # uncompressed size
    return bytes(forged)


def _peak(work: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        # what it says is for other tests: here, what it took to say it
        with contextlib.suppress(errors.ArchiveError):
            work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --- a container ----------------------------------------------------------------------------
DAMAGES: dict[str, Callable[[bytes], bytes]] = {
    "deflated bytes damaged": lambda d: _flipped(d, container.CRL),
    "a package's deflated bytes damaged": lambda d: _flipped(
        d, "messages/01-received-document.edxml"
    ),
    "mimetype encrypted": lambda d: _set_flag_and_method(d, "mimetype", flag=1),
    "a file encrypted": lambda d: _set_flag_and_method(d, container.DESCRIPTION, flag=1),
    "an unknown compression method": lambda d: _set_flag_and_method(d, container.CRL, method=99),
    "bzip2, which unfolds unbounded": lambda d: _recompressed(
        d, container.DESCRIPTION, zipfile.ZIP_BZIP2
    ),
    "lzma, which unfolds unbounded": lambda d: _recompressed(
        d, "messages/02-sent-status-01.edxml", zipfile.ZIP_LZMA
    ),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_or_unusual_zip_is_refused_not_a_fault(
    ca: Ca, made: bytes, damage: str, tmp_path: Path
) -> None:
    code, output = _verify(ca, DAMAGES[damage](made), tmp_path)
    assert code == 1, output
    assert output.startswith(("error EDOC-ARC-001", "error EDOC-ARC-002")), output


def test_a_token_of_an_unknown_signature_algorithm_is_a_bad_timestamp(
    ca: Ca, made: bytes, tmp_path: Path
) -> None:
    """The token is outside the manifest: anyone may swap it for a crafted one."""
    with zipfile.ZipFile(io.BytesIO(made)) as opened:
        token = cms.ContentInfo.load(opened.read(container.TOKEN))
    token["content"]["signer_infos"][0]["signature_algorithm"] = {"algorithm": "1.2.3.4"}
    crafted = token.dump(force=True)
    forged = support.rewrite(made, lambda n, d: crafted if n == container.TOKEN else d)
    code, output = _verify(ca, forged, tmp_path)
    assert (code, output.split(":")[0]) == (1, "error EDOC-ARC-003"), output


def test_a_file_said_larger_than_a_verifier_reads_whole_is_refused(ca: Ca, made: bytes) -> None:
    big = bytes(container.MAX_META_BYTES + 1)  # a few tens of kB deflated
    forged = support.rewrite(made, lambda n, d: big if n == container.DESCRIPTION else d)
    with pytest.raises(errors.BadContainer, match=r"evidence\.json is larger than"):
        verify_container(forged, ca.keys.trust().root)
    assert _peak(lambda: verify_container(forged, ca.keys.trust().root)) < 8 * MIB


@pytest.mark.parametrize("name", [container.DESCRIPTION, "messages/01-received-document.edxml"])
def test_a_deflate_stream_longer_than_its_file_is_not_unfolded(
    ca: Ca, made: bytes, name: str
) -> None:
    """A file read whole is read as much as it says it holds, not "all there is": the
    rest of a forged stream (here 200 MB of zeros in 200 kB) stays folded."""
    forged = _with_hidden_tail(made, name, 200 * MIB)
    assert len(forged) < len(made) + MIB
    assert _peak(lambda: verify_container(forged, ca.keys.trust().root)) < 32 * MIB


# --- a day archive --------------------------------------------------------------------------
def test_a_day_archive_whose_container_is_compressed_is_refused(
    ca: Ca, archive: bytes, tmp_path: Path
) -> None:
    """A container copied out to be verified is as large as its entry says it unfolds to:
    a stored one is no larger than the archive itself, a deflated one up to a thousand
    times (a temporary folder filled from a few MB). edoc stores them; so must others."""
    forged = _recompressed(archive, "containers/0001.asice", zipfile.ZIP_DEFLATED)
    with pytest.raises(errors.BadContainer, match=r"containers/0001\.asice must be stored"):
        day.verify_day(forged, ca.keys.trust().root)
    code, output = _verify(ca, forged, tmp_path)
    assert (code, output.split(":")[0]) == (1, "error EDOC-ARC-001"), output


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: _flipped(d, day.LINKING),
        lambda d: _set_flag_and_method(d, day.LINKING, flag=1),
        lambda d: _set_flag_and_method(d, day.LINKING, method=99),
        lambda d: _recompressed(d, day.LINKING, zipfile.ZIP_BZIP2),
    ],
    ids=["damaged", "encrypted", "unknown method", "bzip2"],
)
def test_a_damaged_day_archive_is_refused_not_a_fault(
    ca: Ca, archive: bytes, damage: Callable[[bytes], bytes], tmp_path: Path
) -> None:
    code, output = _verify(ca, damage(archive), tmp_path)
    assert (code, output.split(":")[0]) == (1, "error EDOC-ARC-001"), output


def test_a_day_archives_linkinginfo_is_read_as_much_as_it_says(ca: Ca, archive: bytes) -> None:
    forged = _with_hidden_tail(archive, day.LINKING, 200 * MIB)
    assert _peak(lambda: day.verify_day(forged, ca.keys.trust().root)) < 32 * MIB
    big = bytes(container.MAX_META_BYTES + 1)
    said = support.rewrite(archive, lambda n, d: big if n == day.LINKING else d)
    with pytest.raises(errors.BadContainer, match="linkinginfo is larger than"):
        day.verify_day(said, ca.keys.trust().root)


# --- what only the authority's help gets past the token: still refused, not a fault ----------
def _files(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as opened:
        skipped = ("mimetype", container.MANIFEST, container.TOKEN)
        return {n: opened.read(n) for n in opened.namelist() if n not in skipped}


@pytest.mark.parametrize(
    "description",
    [[], "text", {"messages": 3}, {"messages": ["messages/01-received-document.edxml"]}],
    ids=["a list", "a string", "messages a number", "messages of strings"],
)
def test_a_stamped_description_of_another_shape_is_refused(
    ca: Ca, made: bytes, description: object, tmp_path: Path
) -> None:
    files = _files(made)
    files[container.DESCRIPTION] = json.dumps(description).encode()
    code, output = _verify(ca, support.rewrite_all(ca, made, files), tmp_path)
    assert (code, output.split(":")[0]) == (1, "error EDOC-ARC-001"), output


@pytest.mark.parametrize(
    "containers",
    [["containers/0001.asice"], [7], "containers/0001.asice"],
    ids=["names", "numbers", "a string"],
)
def test_a_stamped_linkinginfo_of_another_shape_is_refused(
    ca: Ca, archive: bytes, containers: object, tmp_path: Path
) -> None:
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        linking = json.loads(opened.read(day.LINKING))
    linking["containers"] = containers
    text = json.dumps(linking).encode()
    token = support.stamper(ca)(hashlib.sha256(text).digest())
    replaced = {day.LINKING: text, day.LINKING_TOKEN: token}
    forged = support.rewrite(archive, lambda n, d: replaced.get(n, d))
    code, output = _verify(ca, forged, tmp_path)
    assert (code, output.split(":")[0]) == (1, "error EDOC-ARC-001"), output


def test_a_day_archives_deeply_nested_linkinginfo_is_refused(
    ca: Ca, archive: bytes, tmp_path: Path
) -> None:
    """linkinginfo is read before its token is checked: anyone's JSON, nested past the
    parser's stack."""
    deep = b"[" * 100_000 + b"]" * 100_000
    forged = support.rewrite(archive, lambda n, d: deep if n == day.LINKING else d)
    code, output = _verify(ca, forged, tmp_path)
    assert (code, output.split(":")[0]) == (1, "error EDOC-ARC-001"), output
