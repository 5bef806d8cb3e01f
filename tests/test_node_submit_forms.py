"""The agency door's own reading of a form's headers (edoc.node.submit) against aiohttp's:
the same multipart/form-data verdict on a Content-Type, the same name and file name from
a part's Content-Disposition, whatever the header."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import partial

from aiohttp.helpers import parse_content_type
from aiohttp.multipart import content_disposition_filename, parse_content_disposition
from hypothesis import example, given, settings
from hypothesis import strategies as st

from edoc.node import submit

# Characters that mean something to one parser or the other, and some that mean nothing.
_TRICKY = "\"\\;/=%*' \t,()<>@:?[]{}.-_aZ09é\u00a0\u3000"
_TEXT = st.text(alphabet=st.sampled_from(_TRICKY), max_size=12) | st.text(max_size=8)


def _outcome(read: Callable[[], object]) -> object:
    """What reading gives, or the error it raises (the door answers that as a bad form)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return read()
        except ValueError as exc:
            return type(exc), str(exc)


def _aiohttp_names(header: str | None) -> list[object]:
    """What ``part.name`` and ``part.filename`` give (aiohttp.multipart.BodyPartReader)."""

    def read(param: str) -> str | None:
        _, params = parse_content_disposition(header)
        return content_disposition_filename(params, param)

    return [_outcome(partial(read, param)) for param in ("name", "filename")]


def _ours(header: str | None) -> list[object]:
    return [
        _outcome(partial(submit.disposition_param, header, param)) for param in ("name", "filename")
    ]


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


@settings(max_examples=3000, deadline=None)
@given(header=_dispositions() | _TEXT)
@example(header='form-data; name="metadata"')
@example(header='form-data; name="file"; filename="t%E1%BB%87p-0.pdf"')
@example(header='form-data; name="file"; filename="/etc/passwd"')
@example(header='form-data; name="file"; filename="a;b.pdf"')
@example(header='form-data; name="file"; filename="a\\"b.pdf"')
@example(header='form-data; name=""')
@example(header='form-data; name="x"; filename=""')
def test_a_part_is_named_as_aiohttp_names_it(header: str) -> None:
    assert _ours(header) == _aiohttp_names(header)


def test_a_part_without_disposition_has_no_name() -> None:
    assert _ours(None) == _aiohttp_names(None) == [None, None]


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
    if submit._FORM_DATA.fullmatch(header):
        assert parse_content_type(header)[0] == "multipart/form-data"


def test_the_usual_headers_take_the_quick_way() -> None:
    """The patterns match what aiohttp's, curl's and browsers' forms send (else they would
    save nothing)."""
    assert submit._DISPOSITION.fullmatch('form-data; name="metadata"')
    assert submit._DISPOSITION.fullmatch('form-data; name="file"; filename="k%E1%BA%BF.pdf"')
    for boundary in [
        "2f8a1c4e5b6d4e7f",
        "------------------------d74496d6",
        "----WebKitFormBoundaryx7",
    ]:
        assert submit._FORM_DATA.fullmatch(f"multipart/form-data; boundary={boundary}")
