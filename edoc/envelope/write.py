"""Tree (or the signed envelope's bytes) → wire bytes: the envelope, then each attachment's
body in base64, streamed."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pybase64
from lxml import etree

from edoc import xmlsafe
from edoc.envelope import canonical
from edoc.envelope.canonical import PACKAGE_CLOSE
from edoc.envelope.names import NSMAP, q
from edoc.model import Attachment

BASE64_LINE = 57 * 1024  # raw bytes per base64 write: a multiple of 3, so no padding mid-stream


def write_package(
    root: etree._Element, files: Sequence[tuple[Attachment, Path | bytes]], out: IO[bytes]
) -> None:
    """Write the envelope, then each attachment in base64, streamed from its file (or
    from memory, a small package's at the hub)."""
    with etree.xmlfile(out, encoding="utf-8") as xf:
        xf.write_declaration()
        with xf.element(q("edXML"), nsmap=NSMAP):
            for child in root:
                if child.tag != q("AttachmentEncoded"):  # a parsed tree's bodiless headers
                    xf.write(child)
            if files:
                with xf.element(q("AttachmentEncoded")):
                    # the attachments as bytes (no lxml escaping pass over the base64,
                    # a 200 MB body still written chunk by chunk), after what xf holds
                    xf.flush()
                    for attachment, path in files:
                        _attachment_bytes(out, attachment, path)


def to_bytes(root: etree._Element) -> bytes:
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="utf-8")
    return data


@dataclass(frozen=True)
class SignedEnvelope:
    """A signed envelope, ready to be written with its attachments: its bytes from the XML
    declaration to the envelope's end (edoc.envelope.canonical's)."""

    head: bytes

    def write(self, files: Sequence[tuple[Attachment, Path | bytes]], out: IO[bytes]) -> None:
        """The package, as write_package writes it from the tree."""
        out.write(self.head)
        if files:
            out.write(b"<edXML:AttachmentEncoded>")
            for attachment, body in files:
                _attachment_bytes(out, attachment, body)
            out.write(b"</edXML:AttachmentEncoded>")
        out.write(PACKAGE_CLOSE)

    def package(self, files: Sequence[tuple[Attachment, Path | bytes]]) -> bytes:
        out = io.BytesIO()
        self.write(files, out)
        return out.getvalue()


def _attachment_bytes(out: IO[bytes], attachment: Attachment, body: Path | bytes) -> None:
    """One attachment's element: its headers, then its body in base64, streamed from its
    file or memory straight to ``out``."""
    fields = [b"<edXML:Attachment>"]
    for name, value in (
        ("ContentId", attachment.content_id),
        ("AttachmentName", attachment.name),
        ("ContentType", attachment.content_type),
        ("Description", attachment.description),
    ):
        if value:
            text = canonical.escaped(xmlsafe.carried(value), "&#13;")
            fields.append(f"<edXML:{name}>{text}</edXML:{name}>".encode())
    fields.append(b"<edXML:ContentTransferEncoded>")
    out.write(b"".join(fields))
    with io.BytesIO(body) if isinstance(body, bytes) else body.open("rb") as stream:
        for chunk in xmlsafe.read_chunks(stream, BASE64_LINE):
            out.write(pybase64.b64encode(chunk))
    out.write(b"</edXML:ContentTransferEncoded></edXML:Attachment>")
