"""Wire bytes → package: the envelope tree, its message, and the attachment bodies
streamed to a sink, checked against the schema and the manifest.

A small package already in memory takes one parse in C; anything out of the ordinary
goes to the streaming reader, which decides and says what is wrong.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from lxml import etree

from edoc import errors, xmlsafe
from edoc.envelope.attachments import (
    AttachmentSink,
    Base64Decoder,
    ReceivedAttachment,
    Writable,
    check_attachments,
    discard_sink,
    safe_attachment_name,
    strict_b64decode,
)
from edoc.envelope.names import NS, q
from edoc.envelope.parse import as_document, message_from_envelope
from edoc.envelope.schema import validate
from edoc.model import Document, Message


@dataclass(frozen=True)
class PackageLimits:
    envelope: xmlsafe.Limits = field(
        default_factory=lambda: xmlsafe.Limits(max_bytes=8 * 1024 * 1024, max_depth=16)
    )
    attachments_bytes: int = 1024 * 1024 * 1024  # decoded, all attachments together


@dataclass(frozen=True)
class Package:
    root: etree._Element  # edXML with the envelope and attachment headers, no bodies
    received: tuple[ReceivedAttachment, ...]
    message: Message  # as the tree read (not yet verified: see edoc.signing)

    @property
    def document(self) -> Document:
        return as_document(self.message)


class _PackageReader:
    """Parser events → envelope tree, with attachment bodies streamed to sinks."""

    _BODY_PATH = (q("edXML"), q("AttachmentEncoded"), q("Attachment"), q("ContentTransferEncoded"))

    def __init__(self, sink: AttachmentSink, limits: PackageLimits) -> None:
        self._tree = etree.TreeBuilder()
        self._sink = sink
        self._limits = limits
        self._path: list[str] = []
        self._envelope_chars = 0
        self._attachment_fields: dict[str, str] = {}
        self._body: tuple[Base64Decoder, Writable] | None = None
        self._attachment_budget = limits.attachments_bytes
        self.received: list[ReceivedAttachment] = []

    def _count(self, text: str) -> None:
        self._envelope_chars += len(text)
        if self._envelope_chars > self._limits.envelope.max_bytes:
            raise errors.XmlTooLarge("edXML envelope too large")

    def start(self, tag: str, attrib: Mapping[str, str], nsmap: Mapping[str | None, str]) -> None:
        if not self._path and tag != q("edXML"):
            raise errors.WrongNamespace(f"root must be {{{NS}}}edXML, not {tag}")
        if self._body is not None:
            raise errors.SchemaViolation("ContentTransferEncoded holds only base64 text")
        # Markup counts too: a flood of empty elements would otherwise grow the tree
        # without limit before the schema gets to refuse it.
        self._count(tag)
        for name, value in attrib.items():
            self._count(name)
            self._count(value)
        self._path.append(tag)
        if tuple(self._path) == self._BODY_PATH:
            self._open_body()
        elif tuple(self._path[:3]) == self._BODY_PATH[:3] and len(self._path) == 3:
            self._attachment_fields = {}
        self._tree.start(tag, dict(attrib), dict(nsmap))

    def _open_body(self) -> None:
        name = self._attachment_fields.get(q("AttachmentName"), "")
        content_id = self._attachment_fields.get(q("ContentId"), "")
        if not name or not content_id:
            raise errors.MissingField("Attachment needs ContentId and AttachmentName first")
        out = self._sink(content_id, safe_attachment_name(name))
        self._body = (Base64Decoder(out, self._attachment_budget), out)

    def data(self, text: str) -> None:
        if self._body is not None:
            self._body[0].feed(text)
            return
        self._count(text)
        if len(self._path) == 4 and self._path[2] == q("Attachment"):
            field = self._path[3]
            self._attachment_fields[field] = self._attachment_fields.get(field, "") + text
        self._tree.data(text)

    def end(self, tag: str) -> None:
        if self._body is not None:
            decoder, out = self._body
            self._body = None
            size, sha256 = decoder.finish()
            out.close()
            self._attachment_budget -= size
            self.received.append(
                ReceivedAttachment(
                    content_id=self._attachment_fields[q("ContentId")],
                    name=self._attachment_fields[q("AttachmentName")],
                    content_type=self._attachment_fields.get(q("ContentType"), ""),
                    description=self._attachment_fields.get(q("Description"), ""),
                    size=size,
                    sha256=sha256,
                )
            )
        self._path.pop()
        self._tree.end(tag)

    def close(self) -> etree._Element:
        root: etree._Element = self._tree.close()
        return root

    def abort(self) -> None:
        if self._body is not None:
            self._body[1].close()


def _wire_limit(limits: PackageLimits) -> xmlsafe.Limits:
    return xmlsafe.Limits(
        max_bytes=limits.envelope.max_bytes + limits.attachments_bytes * 4 // 3 + 1024 * 1024,
        max_depth=limits.envelope.max_depth,
    )


def _read_streamed(
    source: IO[bytes], sink: AttachmentSink, limits: PackageLimits
) -> tuple[etree._Element, tuple[ReceivedAttachment, ...]]:
    reader = _PackageReader(sink, limits)
    try:
        root: etree._Element = xmlsafe.parse_events(
            xmlsafe.read_chunks(source), reader, _wire_limit(limits)
        )
    finally:
        reader.abort()
    return root, tuple(reader.received)


_ATTACHMENTS = f"{q('AttachmentEncoded')}/{q('Attachment')}"
_BODIES = f"{_ATTACHMENTS}/{q('ContentTransferEncoded')}"


# What lies outside the edXML and XML-signature namespaces: elements of another namespace,
# and attributes of any (edoc's own are unqualified).
_DS = "http://www.w3.org/2000/09/xmldsig#"
_FOREIGN = etree.XPath(
    "count(//*) - count(//edXML:*) - count(//ds:*) + count(//@*[namespace-uri() != ''])",
    namespaces={"edXML": NS, "ds": _DS},
)
_MARKUP = etree.XPath("count(//*) + count(//@*)")
_NAMESPACE_CHARS = max(len(NS), len(_DS)) + 2  # the braces round it in a tag


def _envelope_within(root: etree._Element, size: int, limit: int) -> bool:
    """Whether what _PackageReader counts of the tree parsed from ``size`` bytes is within
    ``limit``, bodies not counted. No more than the bytes themselves plus, for each element
    and attribute, its namespace in braces: names, values and text are each no longer in
    characters than where they stand in the bytes (no DTD, so no entity grows). Asked of
    libxml2 in C, where that bound settles it; else counted exactly. A small package (a
    status) needs neither: see _within_by_size."""
    if _within_by_size(size, limit):
        return True
    if not _FOREIGN(root) and (
        # at most size/4 elements and attributes (see _within_by_size): counted only where
        # that bound is not enough (a package over ~700 KB under the default limit)
        size + (size // 4 + 1) * _NAMESPACE_CHARS <= limit
        or size + _MARKUP(root) * _NAMESPACE_CHARS <= limit
    ):
        return True
    return _envelope_chars(root) <= limit


_XML_NAMESPACE = len("http://www.w3.org/XML/1998/namespace")  # xml:lang's, never declared


def _within_by_size(size: int, limit: int) -> bool:
    """The same bound from the size alone: every element takes 4 bytes at least ("<a/>")
    and every attribute 5 (' a=""'), so there are at most size/4 of them; a namespace is
    no longer than the bytes that declare it (or xml:'s); so even if every one bore a
    namespace as long as the whole package, the count would be within the limit."""
    return size + (size // 4 + 1) * (max(size, _XML_NAMESPACE) + 2) <= limit


def _envelope_chars(root: etree._Element) -> int:
    """What _PackageReader counts against the envelope limit: markup and text, bodies not."""
    bodies = set(root.iterfind(_BODIES))
    chars = 0
    for element in root.iter():
        chars += len(element.tag) + sum(len(k) + len(v) for k, v in element.attrib.items())
        chars += len(element.tail or "")
        if element not in bodies:
            chars += len(element.text or "")
    return chars


class _Unusual(Exception):
    """Something in a package the streaming reader must judge, and name the error of."""


def _plain_base64(text: str) -> bytes | None:
    """``text`` decoded in one call where it is base64 and nothing else, as edoc writes it
    (no line breaks), or None. The decoder's own decoding (strict_b64decode, which
    accepts no whitespace), without its pass to strip whitespace first: a copy of the
    whole text, which cost more than decoding it. Anything else is the decoder's to
    judge."""
    if len(text) % 4:
        return None
    try:
        return strict_b64decode(text)
    except ValueError:  # binascii.Error too
        return None


def _decoded(body: etree._Element, budget: int) -> tuple[bytes, int, str]:
    """A body decoded as _PackageReader decodes it: its bytes, size and SHA-256."""
    if len(body):
        raise _Unusual
    text = body.text or ""
    data = _plain_base64(text)
    if data is not None and len(data) <= budget:
        return data, len(data), hashlib.sha256(data).hexdigest()
    buffer = io.BytesIO()
    decoder = Base64Decoder(buffer, budget)
    decoder.feed(text)
    size, sha256 = decoder.finish()
    return buffer.getvalue(), size, sha256


def _bodies(root: etree._Element, limits: PackageLimits) -> list[tuple[ReceivedAttachment, bytes]]:
    """Each attachment body, as _PackageReader finds them, and what it receives of it."""
    bodies = []
    budget = limits.attachments_bytes
    for attachment in root.iterfind(_ATTACHMENTS):
        fields: dict[str, str] = {}
        for child in attachment:
            if child.tag != q("ContentTransferEncoded"):
                if len(child):
                    raise _Unusual
                fields[child.tag] = fields.get(child.tag, "") + (child.text or "")
                continue
            content_id, name = fields.get(q("ContentId"), ""), fields.get(q("AttachmentName"), "")
            if not content_id or not name:
                raise _Unusual
            body, size, sha256 = _decoded(child, budget)
            budget -= size
            header = (fields.get(q("ContentType"), ""), fields.get(q("Description"), ""))
            received = ReceivedAttachment(content_id, name, *header, size, sha256)
            bodies.append((received, body))
            child.text = None  # the envelope is kept without its bodies
    return bodies


def _read_whole(
    data: bytes, sink: AttachmentSink, limits: PackageLimits
) -> tuple[etree._Element, tuple[ReceivedAttachment, ...]] | None:
    """What _read_streamed makes of ``data``, from one parse in C, or None for anything
    out of the ordinary: the streaming reader then decides, and says what is wrong."""
    root = xmlsafe.parse_whole(data, _wire_limit(limits))
    if (
        root is None
        or root.tag != q("edXML")
        or not _envelope_within(root, len(data), limits.envelope.max_bytes)
    ):
        return None
    try:
        bodies = _bodies(root, limits)
        names = [safe_attachment_name(received.name) for received, _ in bodies]
    except (_Unusual, errors.EdocError):  # bad base64, too large, an unsafe name
        return None
    for (received, body), name in zip(bodies, names, strict=True):
        out = sink(received.content_id, name)
        try:
            out.write(body)
        finally:
            out.close()
    return root, tuple(received for received, _ in bodies)


# A package file up to this is read into memory and parsed in one call in C: a node reads
# every package that did not come inside a collect answer from its file, and the
# streaming reader's Python handlers made it cost twice as much (135 KB: 1.39 -> 0.51 ms,
# 402 KB: 1.85 -> 0.90 ms of CPU); at 1.3 MB both cost the same, so larger ones stream.
WHOLE_FROM_FILE = 1024 * 1024


def read_package(
    source: IO[bytes] | bytes | Path,
    sink: AttachmentSink = discard_sink,
    limits: PackageLimits = PackageLimits(),
) -> Package:
    """Parse a package from ``source`` (a stream, bytes in memory or a file), streaming
    attachment bodies into ``sink``.

    The envelope is validated against the schema and the attachments against the
    manifest, so a package returned here is complete and self-consistent. Whether it is
    authentic is edoc.signing's question.
    """
    if isinstance(source, Path):
        with source.open("rb") as file:
            if os.fstat(file.fileno()).st_size <= WHOLE_FROM_FILE:
                return read_package(file.read(), sink, limits)
            return read_package(file, sink, limits)
    read = _read_whole(source, sink, limits) if isinstance(source, bytes) else None
    if read is None:
        stream = io.BytesIO(source) if isinstance(source, bytes) else source
        read = _read_streamed(stream, sink, limits)
    root, received = read
    validate(root)
    # the model also checks values the schema's patterns let through (2026/02/30)
    package = Package(root=root, received=received, message=message_from_envelope(root))
    check_attachments(package.message.attachments, package.received)  # the manifest's entries
    return package
