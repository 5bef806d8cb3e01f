"""Reading an agency's multipart/form-data post cheaply, with aiohttp's answers.

aiohttp reads a request's Content-Type through the email package (~0.2-0.5 ms a post: each
post's new boundary misses its cache) and a part's Content-Disposition with a parser that
rebuilds a pattern's text at every call (~40 µs, asked for a part's name and a file
part's file name; aiohttp's reader asks once more, of the first part). What
clients send is read here by strict patterns; anything else goes to aiohttp's own
parsers, whose answers stay the contract (property tests hold the patterns to them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from aiohttp.multipart import content_disposition_filename, parse_content_disposition

_FORM_DATA = re.compile(r"multipart/form-data; ?boundary=[0-9A-Za-z_.\-]{1,70}")
_QUOTED = r'"([^"\\;/][^"\\;]*)"'  # no escapes, no ";", no leading "/" (aiohttp drops it)
_DISPOSITION = re.compile(f"form-data; name={_QUOTED}(?:; filename={_QUOTED})?")


def is_form_data(request: web.Request) -> bool:
    """Whether the request's Content-Type is multipart/form-data (any boundary)."""
    if _FORM_DATA.fullmatch(request.headers.get(hdrs.CONTENT_TYPE, "")):
        return True
    return request.content_type == "multipart/form-data"


def disposition_params(header: str | None) -> Mapping[str, str]:
    """The parameters of a Content-Disposition, as aiohttp's parser gives them."""
    if header is not None and (plain := _DISPOSITION.fullmatch(header)):
        name, filename = plain.groups()
        return {"name": name} if filename is None else {"name": name, "filename": filename}
    return parse_content_disposition(header)[1]


class FormPart(BodyPartReader):
    """A part whose ``name`` and ``filename`` are read by :func:`disposition_params`."""

    @property
    def name(self) -> str | None:
        params = disposition_params(self.headers.get(hdrs.CONTENT_DISPOSITION))
        return content_disposition_filename(params, "name")

    @property
    def filename(self) -> str | None:
        params = disposition_params(self.headers.get(hdrs.CONTENT_DISPOSITION))
        return content_disposition_filename(params, "filename")


async def open_form(request: web.Request) -> MultipartReader:
    """aiohttp's reader of the post, its parts :class:`FormPart` (aiohttp's hook for the
    class of the parts it reads)."""
    reader = await request.multipart()
    reader.part_reader_cls = FormPart
    return reader
