"""The one JSON reader every JSON input goes through (agency and node request bodies,
document metadata): what is not JSON, and JSON nested deeper than MAX_DEPTH, are
refused as EDOC-ENV-004.

JSON edoc reads nests 3 deep at most (metadata, statuses, registrations). Deeper ran
out of Python's stack (RecursionError: a 500 and its traceback in the log): in the
parser past ~1000 levels, and from a few hundred in what walks the value after it (NFC
normalisation, the schema checks). Nesting is therefore measured without recursion.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from edoc import errors

MAX_DEPTH = 32


def read(text: str | bytes, what: str = "body") -> Any:
    """JSON ``text`` as Python values, nested at most MAX_DEPTH deep; else
    BadMetadataJson (EDOC-ENV-004), ``what`` naming the text in its message."""
    try:
        value = json.loads(text)
    except RecursionError:  # deeper than the parser's stack allows
        raise _too_deep(what) from None
    except ValueError as exc:
        raise errors.BadMetadataJson(f"{what} is not JSON: {exc}") from None
    if _deeper_than(value, MAX_DEPTH):
        raise _too_deep(what)
    return value


def _too_deep(what: str) -> errors.BadMetadataJson:
    return errors.BadMetadataJson(f"{what} is JSON nested deeper than {MAX_DEPTH} levels")


def _deeper_than(value: Any, depth: int) -> bool:
    """Whether arrays and objects nest in ``value`` more than ``depth`` deep, walked a
    level at a time."""
    level = [value]
    for _ in range(depth):
        level = [item for held in level for item in _items(held)]
        if not level:
            return False
    return any(isinstance(item, dict | list) for item in level)


def _items(value: Any) -> Iterable[Any]:
    if isinstance(value, dict):
        return value.values()
    return value if isinstance(value, list) else ()
