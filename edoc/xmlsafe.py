"""The one hardened XML parser every XML input goes through.

lxml runs in event (target) mode: no DTD is loaded or accepted (a DOCTYPE is refused
outright, which also rules out entity expansion, XXE and billion laughs), no network,
undeclared entities are refused, processing instructions and XML Schema instance
attributes (xsi:, instructions to a validator) are refused, comments are dropped, and the
caller's limits on bytes and depth are enforced as the bytes arrive.
Big documents are fed in chunks, so a handler may stream large text nodes (attachment
bodies) to disk instead of building them in memory.

A small document already in memory may take a faster way (``parse_whole``): one parse
in C with the same options, taken only when the tree holds nothing but elements and
text within the limits; anything else goes back to the event parser, which judges it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any, Protocol

from lxml import etree

from edoc import errors

CHUNK = 64 * 1024


# What XML 1.0 can carry as text is its Char production; lxml refuses anything else, deep
# inside writing: refused where a text comes in instead, with the field's code.
NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def carried(text: str) -> str:
    """``text``, if XML can carry it; else InvalidField naming the character."""
    if found := NOT_XML_CHAR.search(text):
        raise errors.InvalidField(f"U+{ord(found.group()):04X} cannot be carried in XML")
    return text


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 8 * 1024 * 1024
    max_depth: int = 32


class Handler(Protocol):
    """What receives the parser's events; lxml's own TreeBuilder is one."""

    def start(
        self, tag: str, attrib: Mapping[str, str], nsmap: Mapping[str | None, str]
    ) -> Any: ...

    def end(self, tag: str) -> Any: ...

    def data(self, text: str) -> Any: ...

    def close(self) -> Any: ...


# XML Schema instance attributes (xsi:schemaLocation, xsi:type, ...) instruct a validator,
# which accepts them on any element whatever its schema says: they would ride along in
# parts no signature covers, pointing whoever reads them at other schemas.
XSI = "http://www.w3.org/2001/XMLSchema-instance"
_XSI = f"{{{XSI}}}"
_XSI_REFUSED = "XML Schema instance attributes (xsi:) are not accepted"
_HAS_XSI = etree.XPath(f"boolean(//@*[namespace-uri()='{XSI}'])")


class _FirstAttributes:
    def __init__(self) -> None:
        self.attrib: dict[str, str] = {}

    def start(self, _tag: str, attrib: Mapping[str, str], _nsmap: object = None) -> None:
        self.attrib = self.attrib or dict(attrib)

    def end(self, _tag: str) -> None: ...

    def close(self) -> None: ...


def _ampersand_as_reference() -> bool:
    """Whether this libxml2, not told to replace entities (resolve_entities=False), hands
    an attribute's ampersand to a parser target as the five characters ``&#38;`` (2.12
    and 2.14 do; a literal "&#38;" then comes as "&#38;#38;")."""
    seen = _FirstAttributes()
    etree.fromstring(b'<a x="&amp;"/>', etree.XMLParser(target=seen, resolve_entities=False))
    return seen.attrib["x"] == "&#38;"


_AMPERSAND_AS_REFERENCE = _ampersand_as_reference()


def _unescaped(attrib: Mapping[str, str]) -> Mapping[str, str]:
    """``attrib`` as written, where libxml2 handed ampersands over as ``&#38;``."""
    if not _AMPERSAND_AS_REFERENCE or "&" not in "".join(attrib.values()):
        return attrib
    return {name: value.replace("&#38;", "&") for name, value in attrib.items()}


class _Guard:
    """lxml target that checks every event before passing it on to the handler."""

    def __init__(self, handler: Handler, limits: Limits) -> None:
        self._handler = handler
        self._limits = limits
        self._depth = 0
        self._complete = False
        self._declared: dict[str | None, str] = {}

    def start_ns(self, prefix: str, uri: str) -> None:
        # The namespaces the next element declares, told here by every lxml release: 6.2.0
        # passes start() an empty nsmap (LP#2178248), and every prefix came out as ns0.
        # lxml names the default namespace '' where its builders want None.
        self._declared[prefix or None] = uri

    def start(self, tag: str, attrib: Mapping[str, str], _nsmap: object = None) -> None:
        self._depth += 1
        if self._depth > self._limits.max_depth:
            raise errors.XmlTooDeep(f"nesting deeper than {self._limits.max_depth} elements")
        if attrib:  # (most elements have none: nothing more to look at)
            if any(name.startswith(_XSI) for name in attrib):
                raise errors.ForbiddenXmlConstruct(_XSI_REFUSED)
            attrib = _unescaped(attrib)
        declared, self._declared = self._declared, {}
        self._handler.start(tag, attrib, declared)

    def end(self, tag: str) -> None:
        self._depth -= 1
        self._handler.end(tag)
        self._complete = self._depth == 0

    def data(self, text: str) -> None:
        self._handler.data(text)

    def doctype(self, *_: object) -> None:
        raise errors.ForbiddenDtd("DOCTYPE declarations are not accepted")

    def pi(self, target: str, _data: str | None = None) -> None:
        raise errors.ForbiddenXmlConstruct(f"processing instruction <?{target}?> not accepted")

    def comment(self, _text: str) -> None:
        """Comments carry nothing and are not signed (C14N drops them): ignore them."""

    def close(self) -> Any:
        # lxml also calls close() after a parse error; the handler's own complaint about
        # the unfinished document would then hide the real error, so keep quiet.
        return self._handler.close() if self._complete else None


def _translate(exc: etree.XMLSyntaxError) -> errors.XmlError:
    if exc.code == etree.ErrorTypes.ERR_UNDECLARED_ENTITY:
        return errors.ForbiddenEntity(f"entity references are not accepted: {exc.msg}")
    return errors.MalformedXml(f"not well-formed XML: {exc.msg}")


def parse_events(chunks: Iterable[bytes], handler: Handler, limits: Limits = Limits()) -> Any:
    """Feed ``chunks`` through the hardened parser into ``handler``; return its close()."""
    parser = etree.XMLParser(
        target=_Guard(handler, limits),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
    )
    seen = 0
    try:
        for chunk in chunks:
            seen += len(chunk)
            if seen > limits.max_bytes:
                raise errors.XmlTooLarge(f"XML larger than {limits.max_bytes} bytes")
            parser.feed(chunk)
        return parser.close()
    except etree.XMLSyntaxError as exc:
        raise _translate(exc) from None
    except ValueError as exc:  # lxml's tree builder refuses some names the parser let by
        raise errors.MalformedXml(f"not well-formed XML: {exc}") from None


@functools.cache
def _deeper_than(max_depth: int) -> etree.XPath:
    """Whether any element lies deeper than ``max_depth`` (the root is at depth 1)."""
    return etree.XPath("boolean(/" + "/".join(["*"] * (max_depth + 1)) + ")")


def _plain(root: etree._Element, max_depth: int) -> bool:
    """Elements and text only, no deeper than ``max_depth``: nothing to judge. (Asked
    of libxml2 in C: walking the tree in Python was a tenth of reading a status.)"""
    if root.getroottree().docinfo.doctype:
        return False
    if (
        next(root.itersiblings(preceding=True), None) is not None
        or next(root.itersiblings(), None) is not None
        or next(root.iter(etree.PI, etree.Entity, etree.Comment), None) is not None
        or _HAS_XSI(root)
    ):
        return False  # a PI, an entity reference or an xsi: attribute: the event parser refuses it
    return not _deeper_than(max_depth)(root)


def parse_whole(data: bytes, limits: Limits = Limits()) -> etree._Element | None:
    """Parse a small document held in memory in one call into libxml2 (ten times faster
    than the event parser), or None when it holds anything but elements and text, or
    breaks a rule: the event parser then says what is wrong with it."""
    if len(data) > limits.max_bytes:
        return None
    try:
        root = etree.fromstring(data, _libxml2_parser(remove_comments=True))
    except (etree.XMLSyntaxError, ValueError):
        return None
    return root if _plain(root, limits.max_depth) else None


def read_chunks(stream: IO[bytes], size: int = CHUNK) -> Iterable[bytes]:
    while chunk := stream.read(size):
        yield chunk


def parse(data: bytes, limits: Limits = Limits()) -> etree._Element:
    """Parse a small, whole XML document into a tree (address books, status messages)."""
    if len(data) > limits.max_bytes:
        raise errors.XmlTooLarge(f"XML larger than {limits.max_bytes} bytes")
    root: etree._Element = parse_events([data], etree.TreeBuilder(), limits)
    return root


def parse_written(data: bytes) -> etree._Element:
    """Parse XML edoc has just written itself (a signed envelope, to check it against the
    schema): libxml2 with no entities, network or DTD, but without the limits and checks
    of input (parse_whole, parse). Never for bytes that came from outside."""
    root: etree._Element = etree.fromstring(data, _libxml2_parser())
    return root


def _libxml2_parser(remove_comments: bool = False) -> etree.XMLParser:
    """A new parser (one per call: an lxml parser is not for two threads at once) that
    resolves no entity, reads no DTD and fetches nothing."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=remove_comments,
    )
