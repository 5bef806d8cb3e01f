"""The agency door's own reading of a form (edoc.node.formdata) against aiohttp's: the
same multipart/form-data verdict on a Content-Type, the same parameters from a part's
Content-Disposition whatever the header, the same parts, names and file names read from any
body."""

from __future__ import annotations

import asyncio
import warnings
from unittest import mock

from aiohttp import BodyPartReader, MultipartReader
from aiohttp.helpers import parse_content_type
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.multipart import parse_content_disposition
from aiohttp.streams import StreamReader
from hypothesis import example, given, settings
from hypothesis import strategies as st

from edoc.node import formdata

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


@settings(max_examples=1500, deadline=None)
@given(header=_dispositions() | _TEXT)
@example(header='form-data; name="metadata"')
@example(header='form-data; name="file"; filename="t%E1%BB%87p-0.pdf"')
@example(header='form-data; name="file"; filename="/etc/passwd"')
@example(header='form-data; name="file"; filename="a;b.pdf"')
@example(header='form-data; name="file"; filename="a\\"b.pdf"')
@example(header='form-data; name=""')
@example(header='form-data; name="x"; filename=""')
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
    if formdata._FORM_DATA.fullmatch(header):
        assert parse_content_type(header)[0] == "multipart/form-data"


def test_the_usual_headers_take_the_quick_way() -> None:
    """The patterns match what aiohttp's, curl's and browsers' forms send (else they would
    save nothing)."""
    assert formdata._DISPOSITION.fullmatch('form-data; name="metadata"')
    assert formdata._DISPOSITION.fullmatch('form-data; name="file"; filename="k%E1%BA%BF.pdf"')
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


async def _read_all(part_class: type[BodyPartReader], body: bytes) -> object:
    """Every part aiohttp's reader reads with parts of ``part_class`` (headers, name, file
    name, body and default charset), or its error."""
    content = StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    content.feed_data(body)
    content.feed_eof()
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
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
