"""A package as a relay passes it on: the bytes it received, with its own hop added.

The hub verifies the bytes a node sent, so it passes those same bytes on with its
``TraceHeader`` written in before ``Bussiness`` (where edoc.envelope.add_trace_hop puts
it), rather than writing the whole package anew from its tree. That is done only where
finding the place in the bytes is certain: in a schema-valid package (read_package's),
UTF-8, with no comment, CDATA section, processing instruction or DOCTYPE (so every ``<``
opens or closes an element), one Bussiness, under a prefix its parent already has in
scope. Anything else is written from the tree as before, which drops what the reader
dropped.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

from lxml import etree

from edoc.envelope.build import add_trace_hop
from edoc.envelope.dates import format_timestamp
from edoc.envelope.names import NS, q
from edoc.envelope.write import write_package
from edoc.model import Attachment, TraceHop

# The declaration edoc and most writers put first, saying UTF-8 or nothing of encoding.
_DECLARATION = re.compile(
    rb"<\?xml\s+version\s*=\s*(['\"])1\.0\1"
    rb"(?:\s+encoding\s*=\s*(['\"])(?i:utf-8)\2)?"
    rb"(?:\s+standalone\s*=\s*(['\"])(?:yes|no)\3)?\s*\?>"
)
# the first match is find()'s (XPath's come in document order), at a third of its cost
_TRACE = etree.XPath(
    "edXML:edXMLEnvelope/edXML:edXMLHeader/edXML:TraceHeaderList", namespaces={"edXML": NS}
)
_BUSINESSES = etree.XPath("count(//edXML:Bussiness)", namespaces={"edXML": NS})


def relayed(
    data: bytes,
    root: etree._Element,
    files: Sequence[tuple[Attachment, Path | bytes]],
    hop: TraceHop,
) -> bytes:
    """``data`` with ``hop`` added; ``root`` and ``files`` are what edoc.envelope's
    read_package made of ``data`` (the schema-valid tree, and each attachment's bytes),
    written out where the hop cannot be spliced in."""
    spliced = _spliced(data, root, hop)
    if spliced is not None:
        return spliced
    add_trace_hop(root, hop)
    out = io.BytesIO()
    write_package(root, files, out)
    return out.getvalue()


_SPACE_THEN_ELEMENT = re.compile(rb"[ \t\r\n]*<")


def _utf8_markup_only(data: bytes) -> bool:
    """UTF-8, and nothing but elements, attributes and text after the declaration."""
    declaration = _DECLARATION.match(data)
    start = declaration.end() if declaration else 0
    return (
        _SPACE_THEN_ELEMENT.match(data, start) is not None
        and not _opens(data, b"?", start)
        and not _opens(data, b"!", start)
    )


def _opens(data: bytes, mark: bytes, start: int) -> bool:
    """Whether ``<`` + ``mark`` stands in ``data`` from ``start`` on. (Searched for the
    one byte, then looked behind: a search for two bytes at once does not skip ahead,
    and crawled through the attachments' base64.)"""
    at = data.find(mark, start)
    while at >= 0:
        if at > start and data[at - 1] == ord("<"):
            return True
        at = data.find(mark, at + 1)
    return False


def _spliced(data: bytes, root: etree._Element, hop: TraceHop) -> bytes | None:
    traces = _TRACE(root)
    trace = traces[0] if traces else None
    business = None if trace is None else next(trace.iterchildren(q("Bussiness")), None)
    if trace is None or business is None or trace.nsmap.get(business.prefix) != NS:
        return None
    if not _utf8_markup_only(data) or _BUSINESSES(root) != 1:
        return None
    # Every '<' opens or closes an element, so the first start tag of this name is the
    # first element of it: Bussiness, for the schema lets no element before it (the
    # message header and the hops) bear that name, in any namespace.
    found = _start_tag(business.prefix).search(data)
    if found is None:
        return None
    at = found.start()
    return data[:at] + _hop_bytes(business.prefix, hop) + data[at:]


@functools.lru_cache(maxsize=16)
def _start_tag(prefix: str | None) -> re.Pattern[bytes]:
    name = f"{prefix}:Bussiness" if prefix else "Bussiness"
    return re.compile(b"<" + re.escape(name.encode()) + rb"[ \t\r\n/>]")


def _hop_bytes(prefix: str | None, hop: TraceHop) -> bytes:
    p = f"{prefix}:" if prefix else ""
    return (
        f"<{p}TraceHeader><{p}OrganId>{escape(hop.org_id)}</{p}OrganId>"
        f"<{p}Timestamp>{escape(format_timestamp(hop.timestamp))}</{p}Timestamp></{p}TraceHeader>"
    ).encode()
