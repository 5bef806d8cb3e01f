"""Reading an agency's multipart/form-data post cheaply, with aiohttp's answers.

aiohttp reads a request's Content-Type through the email package (~0.2-0.5 ms a post: each
post's new boundary misses its cache) and a part's Content-Disposition with a parser that
rebuilds a pattern's text at every call (~40 µs, asked three times a file part: by the
reader for RFC 7578's ``_charset_`` part, then for the name and the file name). What
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


def part_param(part: BodyPartReader, param: str) -> str | None:
    """A part's ``name`` or ``filename``, as aiohttp's ``part.name`` and ``part.filename``
    read it (raising what they raise)."""
    params = disposition_params(part.headers.get(hdrs.CONTENT_DISPOSITION))
    return content_disposition_filename(params, param)


class FormReader(MultipartReader):
    """aiohttp's multipart reader, its ``next`` the same but for the test of each part's
    name against ``_charset_`` (disposition_params, not aiohttp's parser). It is aiohttp
    3.14's method: tests/test_node_submit_forms.py fails when aiohttp's changes."""

    async def next(self) -> MultipartReader | BodyPartReader | None:
        if self._at_eof:
            return None
        await self._maybe_release_last_part()
        if self._at_bof:
            await self._read_until_first_boundary()
            self._at_bof = False
        else:
            await self._read_boundary()
        if self._at_eof:  # we just read the last boundary, nothing to do there
            return None

        part = await self.fetch_next_part()
        # https://datatracker.ietf.org/doc/html/rfc7578#section-4.6
        if (
            self._last_part is None
            and self._mimetype.subtype == "form-data"
            and isinstance(part, BodyPartReader)
        ):
            params = disposition_params(part.headers.get(hdrs.CONTENT_DISPOSITION))
            if params.get("name") == "_charset_":
                # Longest encoding in https://encoding.spec.whatwg.org/encodings.json
                # is 19 characters, so 32 should be more than enough for any valid encoding.
                charset = await part.read_chunk(32)
                if len(charset) > 31:
                    raise RuntimeError("Invalid default charset")
                self._default_charset = charset.strip().decode()
                part = await self.fetch_next_part()
        self._last_part = part
        return self._last_part


def open_form(request: web.Request) -> FormReader:
    """The reader ``request.multipart()`` makes, as a FormReader (the same arguments)."""
    return FormReader(
        request.headers,
        request.content,
        client_max_size=request.client_max_size,
        max_field_size=request.protocol.max_field_size,
        max_headers=request.protocol.max_headers,
        max_size_error_cls=web.HTTPRequestEntityTooLarge,
    )
