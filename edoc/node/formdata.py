"""Reading an agency's multipart/form-data post cheaply, with aiohttp's answers.

aiohttp reads a request's Content-Type through the email package (~0.2-0.5 ms a post: each
post's new boundary misses its cache) and a part's Content-Disposition with a parser that
rebuilds a pattern's text at every call (~25-50 µs, asked for a part's name and a file
part's file name; aiohttp's reader asks once more of every part, for RFC 7578's
``_charset_``). What clients send is read here by strict patterns (aiohttp's client,
curl, browsers, RFC 5987's ``filename*``); anything else goes to aiohttp's own parsers,
whose answers stay the contract (property tests hold the patterns to them).

A small post (its Content-Length at most what the door keeps in memory anyway) is read
whole and split at its delimiters by ``bytes.find`` (:func:`split`): aiohttp's reader
reads a part in Python-level loops over chunks, copying and searching windows of them,
and parses each part's disposition with its slow parser (~0.4 ms of a post of three
100 KB files). Only a body of the plain form is split so; any other (a preamble, more
than CRLF after a delimiter, header lines aiohttp reads its own way or refuses, a nested
multipart, a ``_charset_`` part, no closing delimiter ...) is read from memory by
aiohttp's reader, as it would have been from the connection. A differential test holds
the door's reading of split posts to its reading of the same posts streamed. A body of more
parts than the door takes is split only as far as the first part past them: the door
refuses it there, whatever follows.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from urllib.parse import unquote

from aiohttp import BodyPartReader, MultipartReader, StreamReader, hdrs, web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http import HeadersParser
from aiohttp.multipart import content_disposition_filename, parse_content_disposition
from multidict import CIMultiDictProxy

_FORM_DATA = re.compile(r"multipart/form-data; ?boundary=([0-9A-Za-z_.\-]{1,70})")

# A Content-Disposition as clients write it: a quoted or token name, a quoted or token
# file name (aiohttp's client and browsers quote it, percent-encoding what they must), an
# RFC 5987 filename* in UTF-8 (urllib3 1.x, .NET; after a plain filename or alone).
_QUOTED = r'"([^"\\;/][^"\\;]*)"'  # no escapes, no ";", no leading "/" (aiohttp drops it)
_BARE = r"([!#$%&'*+.^_`|~0-9A-Za-z\-]+)"  # an RFC 9110 token: aiohttp keeps it as it is
_EXTENDED = r"(?i:utf-8)''([!#$%&*+.^_`|~0-9A-Za-z\-]*)"  # no third "'"
_DISPOSITION = re.compile(
    f"form-data; name=(?:{_QUOTED}|{_BARE})"
    f"(?:; filename=(?:{_QUOTED}|{_BARE}))?"
    f"(?:; filename\\*={_EXTENDED})?"
)


def is_form_data(request: web.Request) -> bool:
    """Whether the request's Content-Type is multipart/form-data (any boundary)."""
    if _FORM_DATA.fullmatch(request.headers.get(hdrs.CONTENT_TYPE, "")):
        return True
    return request.content_type == "multipart/form-data"


def disposition_params(header: str | None) -> Mapping[str, str]:
    """The parameters of a Content-Disposition, as aiohttp's parser gives them."""
    if header is not None and (plain := _DISPOSITION.fullmatch(header)):
        quoted_name, token_name, quoted_file, token_file, extended = plain.groups()
        params = {"name": quoted_name or token_name}
        if (filename := quoted_file or token_file) is not None:
            params["filename"] = filename
        if extended is not None:
            try:
                params["filename*"] = unquote(extended, "utf-8", "strict")
            except UnicodeDecodeError:  # aiohttp warns and drops it: let it
                return parse_content_disposition(header)[1]
        return params
    return parse_content_disposition(header)[1]


def _named(headers: Mapping[str, str], key: str) -> str | None:
    params = disposition_params(headers.get(hdrs.CONTENT_DISPOSITION))
    return content_disposition_filename(params, key)


class _Named:
    """A part's ``name`` and ``filename``, read by :func:`disposition_params`."""

    headers: CIMultiDictProxy[str]

    @property
    def name(self) -> str | None:
        return _named(self.headers, "name")

    @property
    def filename(self) -> str | None:
        return _named(self.headers, "filename")


class FormPart(_Named, BodyPartReader):
    """aiohttp's part, its ``name`` and ``filename`` read by :func:`disposition_params`."""


class HeldPart(_Named):
    """A part of a post read whole: its headers as aiohttp's reader parses them, its
    content given by one ``read_chunk`` (as a BodyPartReader's chunks would give it)."""

    def __init__(self, headers: CIMultiDictProxy[str], content: bytes) -> None:
        self.headers = headers
        self._content = content

    async def read_chunk(self, size: int = 0) -> bytes:
        content, self._content = self._content, b""
        return content


class HeldForm:
    """The parts :func:`split` read, given one by one as MultipartReader.next gives them."""

    def __init__(self, parts: list[HeldPart]) -> None:
        self._parts = iter(parts)

    async def next(self) -> HeldPart | None:
        return next(self._parts, None)


def _plain_headers(
    block: bytes, max_field_size: int, max_headers: int
) -> CIMultiDictProxy[str] | None:
    """A part's header lines (``block``, split at CRLF) parsed as aiohttp's reader parses
    them; None where its reading could differ (lines near its limits, a nested multipart)
    or it refuses them. (Where aiohttp's lines, split at LF and stripped of every CR and
    LF at the end, are not these, a line here keeps a CR or LF, which the parser refuses.)"""
    lines = block.split(b"\r\n") if block else []
    if len(block) + 2 >= max_field_size or len(lines) >= max_headers:
        return None
    try:
        headers, _ = HeadersParser(max_field_size=max_field_size).parse_headers([*lines, b""])
    except Exception:  # whatever it is, aiohttp's reader says it in its place
        return None
    if "multipart" in headers.get(hdrs.CONTENT_TYPE, "").lower():
        return None  # aiohttp reads it with a reader of its own
    return headers


def split(
    body: bytes, boundary: str, max_field_size: int, max_headers: int, max_parts: int
) -> HeldForm | None:
    """The parts of a body of the plain form, as aiohttp's reader reads them (the same
    headers, the same content); None for any other body. Plain: the first line is the
    delimiter; each part's content ends at the first CRLF + delimiter after its headers
    (where aiohttp ends it), followed by CRLF (another part) or ``--`` (the last: CRLF
    or nothing after it, then anything, an epilogue aiohttp ignores). Of a body of more
    than ``max_parts`` parts, the first ``max_parts + 1``: the reader refuses the last,
    and the rest is not worth splitting."""
    delimiter = b"\r\n--" + boundary.encode()
    if not body.startswith(delimiter[2:] + b"\r\n"):
        return None
    parts: list[HeldPart] = []
    start = len(delimiter)  # a part's first header line
    while True:
        blank = body.find(b"\r\n\r\n", start - 2)  # its headers' end (start - 2: none)
        end = body.find(delimiter, blank + 2) if blank >= 0 else -1
        if end < 0:
            return None
        headers = _plain_headers(body[start:blank], max_field_size, max_headers)
        if headers is None:
            return None
        if _charset_part(headers):
            return None
        parts.append(HeldPart(headers, body[blank + 4 : end]))
        if len(parts) > max_parts:
            return HeldForm(parts)
        after = body[end + len(delimiter) : end + len(delimiter) + 4]
        if after[:2] == b"\r\n":
            start = end + len(delimiter) + 2
        elif after in (b"--\r\n", b"--"):
            return HeldForm(parts)
        else:
            return None


def _charset_part(headers: Mapping[str, str]) -> bool:
    """Whether a part is RFC 7578's _charset_, which aiohttp's reader reads its own way
    (the default charset of the parts after it), by the test it makes. (It means to ask
    of the first part only, but forgets the part before each next part first: it asks of
    every part.)"""
    return disposition_params(headers.get(hdrs.CONTENT_DISPOSITION)).get("name") == "_charset_"


class _Held(BaseProtocol):
    """The protocol of a stream fed from memory: no connection to pause or resume."""

    def pause_reading(self) -> None:
        pass

    def resume_reading(self, resume_parser: bool = True) -> None:
        pass


def _reader(request: web.Request, content: StreamReader) -> MultipartReader:
    """aiohttp's reader of ``content`` as request.multipart() makes it for the request's
    own, its parts :class:`FormPart` (aiohttp's hook for the class of the parts it reads)."""
    reader = MultipartReader(
        request.headers,
        content,
        client_max_size=request.client_max_size,
        max_field_size=request.protocol.max_field_size,
        max_headers=request.protocol.max_headers,
        max_size_error_cls=web.HTTPRequestEntityTooLarge,
    )
    reader.part_reader_cls = FormPart
    return reader


def _held_boundary(request: web.Request, in_memory: int) -> str | None:
    """The boundary of a post to read whole: its length known and at most ``in_memory``
    (and what aiohttp reads whole), not compressed, its Content-Type of the usual form."""
    length = request.content_length
    if length is None or length > min(in_memory, request.client_max_size):
        return None
    if hdrs.CONTENT_ENCODING in request.headers:  # (its length is not the body's)
        return None
    plain = _FORM_DATA.fullmatch(request.headers.get(hdrs.CONTENT_TYPE, ""))
    return plain.group(1) if plain else None


async def open_form(
    request: web.Request, in_memory: int, max_parts: int
) -> MultipartReader | HeldForm:
    """The post's parts: split from the body read whole where it is small and plain (no
    further than the part past ``max_parts``), else by aiohttp's reader (from memory where
    the body was read, else streamed), its parts :class:`FormPart` (aiohttp's hook for the
    class of the parts it reads)."""
    boundary = _held_boundary(request, in_memory)
    if boundary is None:
        reader = await request.multipart()
        reader.part_reader_cls = FormPart
        return reader
    # (request.read() would make two more copies; what it checks holds: the body cannot
    # be longer than its Content-Length, and that is within the request's size limit)
    body = await request.content.read()
    protocol = request.protocol
    held = split(body, boundary, protocol.max_field_size, protocol.max_headers, max_parts)
    if held is not None:
        return held
    limit, _ = request.content.get_read_buffer_limits()  # the same line limits as there
    loop = asyncio.get_running_loop()
    content = StreamReader(_Held(loop), limit, loop=loop)
    content.feed_data(body)
    content.feed_eof()
    return _reader(request, content)
