"""Attachments: safe names, manifest entries for files (read and hashed here, or measured
as they were received), where their bytes go when read, their base64 decoding, and the
check that what arrived is what the manifest names."""

from __future__ import annotations

import binascii
import hashlib
import io
import mimetypes
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pybase64

from edoc import errors, xmlsafe
from edoc.model import Attachment

# The most attachments a package carries: edxml.xsd's maxOccurs of the manifest's Reference
# (and of AttachmentEncoded's Attachment). Counted before anything is hashed, packed or
# signed: the schema check itself comes only once the whole package is signed.
MAX_ATTACHMENTS = 1000


def _at_most_max(count: int) -> None:
    if count > MAX_ATTACHMENTS:
        raise errors.TooLarge(
            f"{count} attachments: a package carries at most {MAX_ATTACHMENTS} (edXML schema)"
        )


def safe_attachment_name(name: str) -> str:
    """A plain file name that cannot escape the folder it is written to."""
    bad = (
        not name
        or name in (".", "..")
        or name.startswith(".")
        or any(sep in name for sep in ("/", "\\", ":"))
        or any(unicodedata.category(char)[0] == "C" for char in name)
        or len(name.encode()) > 255
    )
    if bad:
        raise errors.UnsafeAttachmentName(f"unsafe attachment name: {name!r}")
    return name


def hash_file(path: Path) -> tuple[int, str]:
    """Size and SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as stream:
        for chunk in xmlsafe.read_chunks(stream, 1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


@dataclass(frozen=True)
class ReceivedAttachment:
    """What actually arrived for one attachment: its header as the Attachment element gave
    it (not signed: the manifest is) and the facts measured while streaming its body."""

    content_id: str
    name: str
    content_type: str
    description: str
    size: int
    sha256: str


class Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...

    def close(self) -> None: ...


# Opens where an attachment's bytes go, given its content id and its (safe) name.
AttachmentSink = Callable[[str, str], Writable]


class KeptInMemory(io.BytesIO):
    """An attachment body kept in memory for its reader's caller (a small package's: no
    file to write, read back and delete). The reader's close() must not discard it."""

    def close(self) -> None:
        pass


class _Discard:
    def write(self, data: bytes, /) -> int:
        return len(data)

    def close(self) -> None:
        pass


def discard_sink(_content_id: str, _name: str) -> Writable:
    """A sink for readers that only need sizes and digests."""
    return _Discard()


def strict_b64decode(text: str) -> bytes:
    """binascii's strict base64 decoding, asked of pybase64 first (SIMD: ~40 times faster
    on an attachment). What pybase64 accepts, binascii accepts the same (a property test
    holds it to that); anything it refuses, binascii judges and names the fault."""
    try:
        return pybase64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error too
        return binascii.a2b_base64(text, strict_mode=True)


class Base64Decoder:
    """Decodes base64 text as it arrives, writing bytes to ``out`` and hashing them."""

    _WHITESPACE = str.maketrans("", "", " \t\r\n")

    def __init__(self, out: Writable, budget: int) -> None:
        self._out = out
        self._budget = budget
        self._pending = ""
        self._padded = False
        self._digest = hashlib.sha256()
        self.size = 0

    def feed(self, text: str) -> None:
        self._pending += text.translate(self._WHITESPACE)
        usable = len(self._pending) - len(self._pending) % 4
        if usable:
            self._decode(self._pending[:usable])
            self._pending = self._pending[usable:]

    def _decode(self, text: str) -> None:
        if self._padded:
            raise errors.BadAttachmentEncoding("base64 data continues after its padding")
        try:
            data = strict_b64decode(text)
        except (binascii.Error, ValueError) as exc:
            raise errors.BadAttachmentEncoding(f"attachment is not valid base64: {exc}") from None
        self._padded = text.endswith("=")
        self.size += len(data)
        if self.size > self._budget:
            raise errors.TooLarge("attachments larger than the accepted size")
        self._digest.update(data)
        self._out.write(data)

    def finish(self) -> tuple[int, str]:
        if self._pending:
            raise errors.BadAttachmentEncoding("base64 data is truncated")
        return self.size, self._digest.hexdigest()


def check_attachments(
    manifest: Sequence[Attachment], received: Sequence[ReceivedAttachment]
) -> None:
    """Every manifest entry arrived once, intact, under the header the manifest gives it
    (the Attachment's own header is not signed: what differs would ride along unverified);
    nothing else arrived."""
    expected = {item.content_id: item for item in manifest}
    if len(expected) != len(manifest):
        raise errors.AttachmentMismatch("manifest names a content id twice")
    arrived = {item.content_id: item for item in received}
    if len(arrived) != len(received):
        raise errors.AttachmentMismatch("an attachment content id appears twice")
    if expected.keys() != arrived.keys():
        missing = sorted(expected.keys() - arrived.keys())
        extra = sorted(arrived.keys() - expected.keys())
        raise errors.AttachmentMismatch(f"attachments missing {missing}, not in manifest {extra}")
    for content_id, want in expected.items():
        got = arrived[content_id]
        if (got.name, got.size, got.sha256) != (want.name, want.size, want.sha256):
            raise errors.AttachmentMismatch(f"attachment {content_id} differs from the manifest")
        if (got.content_type, got.description) != (want.content_type, want.description):
            raise errors.AttachmentMismatch(
                f"attachment {content_id}'s ContentType or Description differs from the manifest"
            )


@dataclass(frozen=True)
class MeasuredFile:
    """A file to attach whose size and SHA-256 were measured as its bytes were received
    (the agency door's upload): its bytes in memory (a small upload) or in a file no one
    else writes. Packing it reads nothing twice: the digest is of the bytes it holds."""

    name: str
    body: Path | bytes
    size: int
    sha256: str


def _attachment_name(name: str, names: set[str]) -> str:
    name = safe_attachment_name(unicodedata.normalize("NFC", name))
    if name in names:
        raise errors.UnsafeAttachmentName(f"two attachments named {name!r}")
    names.add(name)
    return name


def _attachment(index: int, name: str, size: int, sha256: str) -> Attachment:
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Attachment(f"cid:{index}", name, content_type, size, sha256)


def attachments_from_files(paths: Sequence[Path]) -> list[tuple[Attachment, Path]]:
    """Manifest entries for files to attach, named by their file names."""
    _at_most_max(len(paths))
    entries = []
    names: set[str] = set()
    for index, path in enumerate(paths, start=1):
        name = _attachment_name(path.name, names)
        if not path.is_file():
            raise errors.FileMissing(f"no such file: {path}")
        entries.append((_attachment(index, name, *hash_file(path)), path))
    return entries


def attachments_from_measured(
    files: Sequence[MeasuredFile],
) -> list[tuple[Attachment, Path | bytes]]:
    """Manifest entries for files measured as they were received, under their names."""
    _at_most_max(len(files))
    names: set[str] = set()
    return [
        (_attachment(index, _attachment_name(item.name, names), item.size, item.sha256), item.body)
        for index, item in enumerate(files, start=1)
    ]
