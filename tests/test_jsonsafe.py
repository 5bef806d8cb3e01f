"""The one JSON reader: JSON nested deeper than MAX_DEPTH is refused as unreadable
(EDOC-ENV-004), not left to run out of Python's stack (RecursionError: a 500)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edoc import errors, jsonsafe


def _nested(depth: int, inner: Any = None) -> Any:
    """``inner`` inside ``depth`` alternating arrays and objects."""
    value = inner
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@pytest.mark.parametrize("inner", [None, [], {}])
def test_json_as_deep_as_allowed_is_read(inner: Any) -> None:
    depth = jsonsafe.MAX_DEPTH - (inner is not None)  # an empty array or object is a level
    value = _nested(depth, inner)
    assert jsonsafe.read(json.dumps(value)) == value


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(json.dumps(_nested(jsonsafe.MAX_DEPTH + 1)), id="one-level-more"),
        pytest.param(json.dumps(_nested(jsonsafe.MAX_DEPTH, [])), id="one-empty-array-more"),
        pytest.param(json.dumps([1, 2, _nested(jsonsafe.MAX_DEPTH)]), id="deep-in-a-sibling"),
        pytest.param("[" * 200_000, id="past-the-parser"),
        pytest.param('{"a": ' * 200_000, id="objects-past-the-parser"),
    ],
)
def test_json_nested_deeper_is_refused(text: str) -> None:
    with pytest.raises(errors.BadMetadataJson, match="body is JSON nested deeper than 32"):
        jsonsafe.read(text)


@pytest.mark.parametrize("text", ["", "{", "[1,]", "{'a': 1}", "NaN-ish"])
def test_text_that_is_not_json_is_refused(text: str) -> None:
    with pytest.raises(errors.BadMetadataJson, match="the status is not JSON"):
        jsonsafe.read(text, "the status")
