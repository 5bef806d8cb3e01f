"""The agency door's own reading of a form (edoc.node.formdata) against aiohttp's: the
same multipart/form-data verdict on a Content-Type, the same parameters from a part's
Content-Disposition whatever the header, the same parts, names and file names read from any
body; and a small post read whole and split, the same upload or the same error as the
same post streamed through aiohttp's reader."""

from __future__ import annotations

import asyncio
import io
import itertools
import warnings
from pathlib import Path
from typing import Any
from unittest import mock

import aiohttp
from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.helpers import parse_content_type, parse_mimetype
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.multipart import parse_content_disposition
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request
from hypothesis import example, given, settings
from hypothesis import strategies as st

from edoc import metadata
from edoc.node import formdata, submit

# Characters that mean something to one parser or the other, and some that mean nothing.
_TRICKY = "\"\\;/=%*' \t,()<>@:?[]{}.-_aZ09é\u00a0\u3000"
_TEXT = st.text(alphabet=st.sampled_from(_TRICKY), max_size=12) | st.text(max_size=8)


def _aiohttp_params(header: str | None) -> dict[str, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return parse_content_disposition(header)[1]


def _ours(header: str | None) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return formdata.disposition_params(header)


@st.composite
def _dispositions(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["form-data", "Form-Data", "attachment", "form-data ", ""]))
    params = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["name", "filename", "filename*", "name*0", "NAME", " name"]),
                st.sampled_from(['"{}"', "{}", '"{}" ', "utf-8''{}", '"{}'])
                .map(lambda shape: shape)
                .flatmap(lambda shape: _TEXT.map(shape.format)),
            ),
            max_size=3,
        )
    )
    separator = draw(st.sampled_from(["; ", ";", " ; "]))
    return kind + "".join(f"{separator}{key}={value}" for key, value in params)


# What clients write (quoted or token values; RFC 5987's filename* after a file name or
# alone), with values that test the quick pattern's edges: escapes and separators aiohttp
# reads its own way, percent-escapes that are not UTF-8, a third "'", a charset not UTF-8.
_VALUES = st.text(alphabet=st.sampled_from(_TRICKY + "'*!#$&+^`|~"), max_size=10) | st.sampled_from(
    ["t%E1%BB%87p-0.pdf", "K%E1%BA%BF%20ho%E1%BA%A1ch.docx", "%FF.pdf", "%E1%BB", "a%2", "tệp.pdf"]
)


@st.composite
def _client_dispositions(draw: st.DrawFn) -> str:
    def value() -> str:
        text = draw(_VALUES)
        return draw(st.sampled_from([f'"{text}"', text]))

    header = f"form-data; name={value()}"
    if draw(st.booleans()):
        header += f"; filename={value()}"
    if draw(st.booleans()):
        charset = draw(st.sampled_from(["utf-8", "UTF-8", "Utf-8", "latin-1", "", "utf-8'x"]))
        header += f"; filename*={charset}''{draw(_VALUES)}"
    return header


@settings(max_examples=3000, deadline=None)
@given(header=_dispositions() | _client_dispositions() | _TEXT)
@example(header='form-data; name="metadata"')
@example(header='form-data; name="file"; filename="t%E1%BB%87p-0.pdf"')
@example(header='form-data; name="file"; filename="/etc/passwd"')
@example(header='form-data; name="file"; filename="a;b.pdf"')
@example(header='form-data; name="file"; filename="a\\"b.pdf"')
@example(header='form-data; name=""')
@example(header='form-data; name="x"; filename=""')
@example(header="form-data; name=\"file\"; filename*=utf-8''t%E1%BB%87p-0.pdf")
@example(header='form-data; name="file"; filename="tep.pdf"; filename*=UTF-8\'\'t%E1%BB%87p.pdf')
@example(header="form-data; name=\"file\"; filename*=utf-8''%FF.pdf")
@example(header="form-data; name=file; filename=tep.pdf")
def test_a_disposition_reads_as_aiohttp_reads_it(header: str) -> None:
    """The same parameters, so the same name and file name (content_disposition_filename
    reads both from them) and the same ``_charset_`` part."""
    assert _ours(header) == _aiohttp_params(header)


def test_a_part_without_disposition_has_no_name() -> None:
    assert _ours(None) == _aiohttp_params(None) == {}


_BOUNDARIES = st.text(alphabet=st.sampled_from(_TRICKY + "AbZz019"), min_size=0, max_size=80)


@st.composite
def _content_types(draw: st.DrawFn) -> str:
    kind = draw(
        st.sampled_from(
            [
                "multipart/form-data",
                "Multipart/Form-Data",
                "multipart/mixed",
                "multipart/form-datax",
            ]
        )
    )
    separator = draw(st.sampled_from(["; ", ";", " ;", "", ";  "]))
    key = draw(st.sampled_from(["boundary", "Boundary", "charset"]))
    return f"{kind}{separator}{key}={draw(_BOUNDARIES)}{draw(st.sampled_from(['', ' ', ';']))}"


@settings(max_examples=2000, deadline=None)
@given(header=_content_types() | _TEXT)
@example(header="multipart/form-data; boundary=2f8a1c4e5b6d4e7f8a9b0c1d2e3f4a5b")
@example(header="multipart/form-data;boundary=------------------------d74496d66958873e")
@example(header="multipart/form-data; boundary=" + "a" * 71)
def test_what_is_taken_for_form_data_is_form_data_to_aiohttp(header: str) -> None:
    """The door's pattern only ever says yes where aiohttp (the email package) says
    multipart/form-data; where it says no, aiohttp is asked."""
    if plain := formdata._FORM_DATA.fullmatch(header):
        assert parse_content_type(header)[0] == "multipart/form-data"
        # the boundary a body is split at is the one aiohttp's reader reads it by
        assert parse_mimetype(header).parameters["boundary"] == plain.group(1)


def test_the_usual_headers_take_the_quick_way() -> None:
    """The patterns match what aiohttp's, curl's and browsers' forms send (else they would
    save nothing)."""
    assert formdata._DISPOSITION.fullmatch('form-data; name="metadata"')
    for disposition in [
        'form-data; name="file"; filename="k%E1%BA%BF.pdf"',  # aiohttp's client
        'form-data; name="file"; filename="kế hoạch.pdf"',  # curl, browsers (UTF-8)
        "form-data; name=\"file\"; filename*=utf-8''k%E1%BA%BF.pdf",  # urllib3 1.x
        "form-data; name=file; filename=ke.pdf; filename*=utf-8''k%E1%BA%BF.pdf",  # .NET
    ]:
        assert formdata._DISPOSITION.fullmatch(disposition), disposition
    for boundary in [
        "2f8a1c4e5b6d4e7f",
        "------------------------d74496d6",
        "----WebKitFormBoundaryx7",
    ]:
        assert formdata._FORM_DATA.fullmatch(f"multipart/form-data; boundary={boundary}")


# --- the parts: aiohttp's reader, a part's name and file name read the quick way --------
BOUNDARY = "edoc-form-boundary"
_NAMES = st.sampled_from(
    ['name="metadata"', 'name="file"; filename="a.txt"', 'name="_charset_"', 'name*0="x"', ""]
)
_PART = st.tuples(
    st.sampled_from(["form-data; ", "Form-Data; ", "form-data;", "attachment; "]),
    _NAMES,
    st.sampled_from([b"", b"Content-Type: multipart/mixed; boundary=in\r\n", b"X: y\r\n"]),
    st.sampled_from([b"", b"utf-8", b"x" * 40, b"{}", b"--" + BOUNDARY.encode()]),
)


def _body(parts: list[tuple[str, str, bytes, bytes]], end: bytes) -> bytes:
    out = b""
    for kind, names, extra, content in parts:
        disposition = f"Content-Disposition: {kind}{names}".encode()
        out += b"--" + BOUNDARY.encode() + b"\r\n" + disposition + b"\r\n" + extra
        out += b"\r\n" + content + b"\r\n"
    return out + end


async def _read_all(
    part_class: type[BodyPartReader], body: bytes, boundary: str = BOUNDARY
) -> object:
    """Every part aiohttp's reader reads with parts of ``part_class`` (headers, name, file
    name, body and default charset), or its error."""
    content = StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    content.feed_data(body)
    content.feed_eof()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    reader = MultipartReader(headers, content)
    reader.part_reader_cls = part_class
    seen: list[object] = []
    try:
        while (part := await reader.next()) is not None:
            if isinstance(part, BodyPartReader):
                named = (part.name, part.filename)
                seen.append((dict(part.headers), named, await part.read(), reader._default_charset))
            else:
                seen.append(("nested", dict(part.headers)))
                await part.release()
    except (ValueError, AssertionError, RuntimeError, HttpProcessingError) as exc:
        seen.append((type(exc), str(exc)))  # what the door answers as a bad form (400)
    return seen


@settings(max_examples=400, deadline=None)
@given(
    parts=st.lists(_PART, max_size=4),
    end=st.sampled_from([b"--" + BOUNDARY.encode() + b"--\r\n", b"", b"--other--\r\n"]),
)
def test_the_parts_read_what_aiohttps_read(
    parts: list[tuple[str, str, bytes, bytes]], end: bytes
) -> None:
    body = _body(parts, end)

    async def both() -> tuple[object, object]:
        return await _read_all(BodyPartReader, body), await _read_all(formdata.FormPart, body)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs, ours = asyncio.run(both())
    assert ours == theirs


# --- a small post read whole and split (formdata.split), against aiohttp's streaming ----
# (the delimiter goes into contents with a boundary ending in "x": the others keep them plain)
_BOUNDARIES_SENT = ["2f8a1c4e5b6d4e7f8a9b0c1d2e3f4a5b", "----WebKitFormBoundaryx", "a-b.c_d"]
_DISPOSITION_LINES = [
    'form-data; name="metadata"',
    'form-data; name="file"; filename="a.txt"',
    'form-data; name="file"; filename="t%E1%BB%87p-0.pdf"',
    "form-data; name=\"file\"; filename*=utf-8''t%E1%BB%87p-1.pdf",
    "form-data; name=file; filename=b.txt",
    'form-data; name="file"; filename="kế hoạch.pdf"',
    'form-data; name="file"; filename=".hidden"',  # unsafe
    'form-data; name="file"; filename="x%FF.pdf"',  # not UTF-8
    'form-data; name="file"',  # neither metadata nor a file
    'form-data; name="_charset_"',
    'form-data; name="_charset_"; filename="d.txt"',
    'attachment; filename="c.txt"',
]
_ODD_LINES = [  # each read by aiohttp's reader its own way, or refused by it
    "Content-Type: multipart/mixed; boundary=in",
    "Content-Transfer-Encoding: base64",
    "Content-Type: text/plain",  # (a second Content-Type, where there is one)
    "no colon here",
    " folded",
    "X-Bad\x01: 1",
    "Content-Length: 1",  # (aiohttp 3.14 ignores it in form-data, RFC 7578 4.8; split too)
]


def _contents(boundary: str) -> st.SearchStrategy[bytes]:
    """Bytes with what a reader could take for an end: CRLFs, dashes, pieces of the
    delimiter and (now and then) the whole of it: inside a part, aiohttp ends it there."""
    delimiter = b"\r\n--" + boundary.encode()
    pieces = [b"\r\n", b"\r", b"\n", b"--", delimiter[:-1], delimiter[2:], b"\r\n\r\n"]
    piece = st.sampled_from(pieces) | st.binary(max_size=40)
    return st.lists(piece | st.just(delimiter) if boundary[-1] == "x" else piece, max_size=6).map(
        b"".join
    )


@st.composite
def _posts(draw: st.DrawFn) -> tuple[str, bytes]:
    """A boundary and a body as clients write it (the metadata part first, most of the
    time), each thing they should not write now and then, on its own: a preamble, a first
    line with more after the delimiter, odd header lines, the delimiter inside a part, a
    bad end, bytes changed here and there."""

    def now_and_then() -> bool:
        return draw(st.integers(0, 5)) == 5  # (the simplest post has none)

    boundary = draw(st.sampled_from(_BOUNDARIES_SENT))
    marker = b"--" + boundary.encode()
    body = draw(st.sampled_from([b"preamble\r\n", b"\r\n"])) if now_and_then() else b""
    body += marker + (draw(st.sampled_from([b"  ", b"x", b"--"])) if now_and_then() else b"")
    for n in range(0 if now_and_then() else draw(st.integers(1, 4))):
        body += (
            draw(st.sampled_from([b"\r", b"\n", b" \r\n", b"\rx"])) if now_and_then() else b"\r\n"
        )
        lines = []
        if n == 0 or draw(st.integers(0, 6)):
            lines.append("Content-Disposition: " + draw(st.sampled_from(_DISPOSITION_LINES)))
        if draw(st.booleans()):
            lines.append(draw(st.sampled_from(["Content-Type: application/pdf", "X-Other: 1"])))
        if now_and_then():
            lines.append(draw(st.sampled_from(_ODD_LINES)))
        lines = draw(st.permutations(lines))
        body += b"".join(line.encode() + b"\r\n" for line in lines) + b"\r\n"
        body += draw(_contents(boundary)) + b"\r\n" + marker
    ends = [b"--\r\n", b"--", b"--\r\nepilogue\r\n"]
    bad_ends = [b"\r\n", b"  \r\n", b"-", b"--x\r\n", b"-- \r\n"]
    body += draw(st.sampled_from(bad_ends if now_and_then() else ends))
    while now_and_then():
        at = draw(st.integers(0, len(body)))
        cut = draw(st.sampled_from([0, 1, 2]))
        body = (
            body[:at] + draw(st.sampled_from([b"", b"\n", b"\r", b"x", b"--"])) + body[at + cut :]
        )
    return boundary, body


def _mocked_request(boundary: str, body: bytes, pieces: list[int], length: bool) -> web.Request:
    content = StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    for at, end in itertools.pairwise([0, *sorted(pieces), len(body)]):
        content.feed_data(body[at:end])
    content.feed_eof()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    if length:  # without it, the door streams the post through aiohttp's reader
        headers["Content-Length"] = str(len(body))
    protocol = mock.Mock(max_field_size=8190, max_headers=128)
    return make_mocked_request("POST", "/", headers=headers, payload=content, protocol=protocol)


async def _read(request: web.Request, limit: int) -> object:
    """What the door reads of a post: the metadata and each file (name, bytes, size,
    SHA-256), or the error (its class and code)."""
    try:
        upload = await submit._read_parts(request, submit.Staging(Path("/nonexistent")), limit)
    except Exception as error:  # any error: both ways must give the same
        return type(error), getattr(error, "code", None)
    return upload.metadata, [(f.name, f.body, f.size, f.sha256) for f in upload.files]


@settings(max_examples=1000, deadline=None)
@given(
    post=_posts(),
    pieces=st.lists(st.integers(0, 2000), max_size=3),
    limit=st.sampled_from([300 * 1024 * 1024] * 4 + [0, 20, 60]),
    metadata_limit=st.sampled_from([1024 * 1024] * 4 + [0, 10]),
    max_parts=st.sampled_from([submit.MAX_PARTS] * 4 + [1, 2, 3]),
)
@example(  # a closing delimiter line with more after it than CRLF
    post=("b", b'--b\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{}\r\n--b--x\r\n'),
    pieces=[],
    limit=300 * 1024 * 1024,
    metadata_limit=1024 * 1024,
    max_parts=submit.MAX_PARTS,
)
@example(  # a delimiter line with more after it than CRLF
    post=(
        "b",
        b'--b\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{}\r\n--b\rx'
        b'Content-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\na\r\n--b--',
    ),
    pieces=[],
    limit=300 * 1024 * 1024,
    metadata_limit=1024 * 1024,
    max_parts=submit.MAX_PARTS,
)
@example(
    post=("b", b'--b\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{}\r\n--b--'),
    pieces=[],
    limit=300 * 1024 * 1024,
    metadata_limit=1024 * 1024,
    max_parts=submit.MAX_PARTS,
)
@example(  # more header lines than aiohttp reads
    post=("b", b"--b\r\n" + b"X: 1\r\n" * 128 + b"\r\n\r\n--b--\r\n"),
    pieces=[],
    limit=300 * 1024 * 1024,
    metadata_limit=1024 * 1024,
    max_parts=submit.MAX_PARTS,
)
@example(  # a header line one byte longer than aiohttp reads (with its CRLF)
    post=(
        "b",
        b'--b\r\nContent-Disposition: form-data; name="metadata"\r\nX: '
        + b"x" * (8190 - 2 - 3 + 1)
        + b"\r\n\r\n{}\r\n--b--\r\n",
    ),
    pieces=[],
    limit=300 * 1024 * 1024,
    metadata_limit=1024 * 1024,
    max_parts=submit.MAX_PARTS,
)
def test_a_small_post_read_whole_reads_as_streamed(
    post: tuple[str, bytes], pieces: list[int], limit: int, metadata_limit: int, max_parts: int
) -> None:
    """The same upload or the same error, whether the door splits the body read whole
    (or, where split declines, aiohttp's reader reads it from memory) or aiohttp's reader
    streams it: the same parts, names, files, sizes, digests and limits, in the same order
    (and of a body of too many parts, split no further than the first part past them, the
    same refusal)."""
    boundary, body = post

    async def both() -> tuple[object, object]:
        whole = await _read(_mocked_request(boundary, body, pieces, True), limit)
        streamed = await _read(_mocked_request(boundary, body, pieces, False), limit)
        return whole, streamed

    with (
        warnings.catch_warnings(),
        mock.patch.object(metadata, "MAX_METADATA_BYTES", metadata_limit),
        mock.patch.object(submit, "MAX_PARTS", max_parts),
    ):
        warnings.simplefilter("ignore")
        whole, streamed = asyncio.run(both())
    assert whole == streamed


def test_what_clients_send_is_split() -> None:
    """A post as aiohttp's client writes it (Vietnamese file names, bytes that look like
    ends) takes the quick way: split, and into the parts aiohttp's reader reads."""
    form = aiohttp.FormData()
    form.add_field("metadata", '{"subject": "Tây Ninh"}', content_type="application/json")
    for n, name in enumerate(["Kế hoạch.pdf", "Phụ lục số 1.docx", "a.txt"]):
        content = b"\r\n--" * n + bytes(range(256)) * 40 + b"\r\n\r\n"
        form.add_field("file", io.BytesIO(content), filename=name, content_type="application/pdf")

    async def split_and_read() -> tuple[list[tuple[Any, ...]], object]:
        writer = form()
        assert isinstance(writer, aiohttp.MultipartWriter)
        body = await writer.as_bytes()
        boundary = writer.boundary
        held = formdata.split(body, boundary, 8190, 128, submit.MAX_PARTS)
        assert held is not None
        split: list[tuple[Any, ...]] = []
        while (part := await held.next()) is not None:
            named = (part.name, part.filename)
            split.append((dict(part.headers), named, await part.read_chunk(), None))
        return split, await _read_all(formdata.FormPart, body, boundary)

    split, theirs = asyncio.run(split_and_read())
    assert split == theirs
    assert [named for _, named, _, _ in split] == [
        ("metadata", None),
        ("file", "K%E1%BA%BF%20ho%E1%BA%A1ch.pdf"),  # (the door unquotes it)
        ("file", "Ph%E1%BB%A5%20l%E1%BB%A5c%20s%E1%BB%91%201.docx"),
        ("file", "a.txt"),
    ]
