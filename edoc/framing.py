"""Several byte strings in one HTTP body, without base64: a batch of packages from a node
to the hub, and the hub's collect answer with its inline packages.

The body is ``EDOCFRM1``, the number of parts (4 bytes, big-endian), the length of each
part (4 bytes each), then the parts back to back and nothing after. Every length is known
before any part is read, so a reader checks the whole layout against the body's size at
once; no part is ever searched for (as multipart boundaries are) or decoded.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from edoc import errors

MEDIA_TYPE = "application/vnd.edoc.frames"
MAGIC = b"EDOCFRM1"
_LENGTH = struct.Struct(">I")
LARGEST_PART = 2**32 - 1  # what a length field holds


def overhead(parts: int) -> int:
    """The framing's own bytes in a body of ``parts`` parts."""
    return len(MAGIC) + _LENGTH.size * (1 + parts)


def frame(parts: Sequence[bytes]) -> bytes:
    """``parts`` in one body."""
    if not parts or any(len(part) > LARGEST_PART for part in parts):
        raise ValueError("a frame body carries 1 or more parts of up to 4 GiB each")
    header = struct.pack(f">{1 + len(parts)}I", len(parts), *(len(part) for part in parts))
    return b"".join((MAGIC, header, *parts))


def unframe(body: bytes, most_parts: int) -> list[bytes]:
    """The parts of ``body``: BadFraming when its layout does not hold exactly (another
    magic, a truncated header, lengths that do not add up to the body), TooLarge when it
    carries more than ``most_parts`` parts."""
    fixed = len(MAGIC) + _LENGTH.size
    if len(body) < fixed or not body.startswith(MAGIC):
        raise errors.BadFraming(f"the body does not start with {MAGIC.decode()} and a count")
    (count,) = _LENGTH.unpack_from(body, len(MAGIC))
    if count == 0:
        raise errors.BadFraming("the body carries no part")
    if count > most_parts:
        raise errors.TooLarge(f"the body carries {count} parts, at most {most_parts} are taken")
    start = overhead(count)
    if len(body) < start:
        raise errors.BadFraming(f"the body ends inside the lengths of its {count} parts")
    lengths = struct.unpack_from(f">{count}I", body, fixed)
    if start + sum(lengths) != len(body):
        raise errors.BadFraming(
            f"the parts' lengths come to {sum(lengths)} bytes, the body has {len(body) - start}"
        )
    parts = []
    for length in lengths:
        parts.append(body[start : start + length])
        start += length
    return parts
