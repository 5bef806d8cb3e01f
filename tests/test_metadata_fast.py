"""The compiled metadata check (fastjsonschema) against jsonschema's: what the compiled one
accepts, jsonschema accepts; what it refuses is judged by jsonschema, so every answer is
the one jsonschema alone gives, error code and message included."""

from __future__ import annotations

import copy
import json
from typing import Any
from unittest import mock

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edoc import errors, metadata
from tests.support.pki import sample_metadata

_EDGES = [
    "",
    "000.00.12.H53",
    "000.00.12.H53\n",  # re's "$" matches before a final newline: jsonschema takes these
    "000.00.12.h53",
    "2026-11-23",
    "2026-11-23\n",
    "2026-1-2",
    "x" * 500,
    "x" * 501,
    "x" * 2000,
    "x" * 2001,
    "é" * 501,
]
_NUMBERS = [-1, 0, 1, 1.0, 3.0, 4, 5, 1.5, 2**31 - 1, 2**31, 2.0**31, float("nan"), 1e400]
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.sampled_from(_NUMBERS), st.sampled_from(_EDGES), st.text()
)
_KEYS = ["id", "name", "x", "full_name", "type", "number", "notation", "place", "date", "code"]
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(_KEYS), inner, max_size=4)
    ),
    max_leaves=6,
)
# Mostly a value near a rule (most fields are strings or small integers), else any value.
_REPLACEMENTS = st.one_of(
    st.sampled_from(_EDGES), st.sampled_from(_NUMBERS), st.sampled_from([[], {}]), _VALUES
)
_ADDED = ["extra", "to", "signer", "response_for", "id", "due_date", "priority", "business"]


def _places(value: Any) -> list[tuple[Any, Any]]:
    """Every (holder, key) in a JSON value, the value itself's fields first."""
    keys = list(value) if isinstance(value, dict) else list(range(len(value)))
    places = [(value, key) for key in keys]
    for key in keys:
        if isinstance(value[key], dict | list):
            places += _places(value[key])
    return places


@st.composite
def _mutated(draw: st.DrawFn) -> Any:
    """The sample metadata with one or two fields dropped, replaced or added anywhere."""
    value: Any = copy.deepcopy(sample_metadata())
    for _ in range(draw(st.integers(1, 2))):
        holder, key = draw(st.sampled_from(_places(value) or [(value, "extra")]))
        change = draw(st.sampled_from(["replace", "drop", "add"]))
        if change == "drop" and isinstance(holder, dict):
            del holder[key]
        elif change == "add" and isinstance(holder, dict):
            holder[draw(st.sampled_from(_ADDED))] = draw(_REPLACEMENTS)
        else:
            holder[key] = draw(_REPLACEMENTS)
    return value


def _verdict(data: Any) -> object:
    try:
        return metadata.check(data)
    except errors.EdocError as exc:
        return exc.code, str(exc)


def _compiled_says_valid(data: Any) -> bool:
    return metadata._valid_at_once(metadata.normalize(data))


def _jsonschema_says_valid(data: Any) -> bool:
    return metadata._validator().is_valid(metadata.normalize(data))


def _ends_a_string_with_newline(value: Any) -> bool:
    if isinstance(value, str):
        return value.endswith("\n")
    if isinstance(value, dict):
        return any(_ends_a_string_with_newline(item) for item in value.values())
    if isinstance(value, list):
        return any(_ends_a_string_with_newline(item) for item in value)
    return False


@settings(max_examples=1500, deadline=None)
@given(value=_mutated())
def test_the_compiled_check_agrees_with_jsonschema(value: Any) -> None:
    try:
        compiled = _compiled_says_valid(value)
    except errors.InvalidField:  # a character XML cannot carry: refused before either
        return
    judged = _jsonschema_says_valid(value)
    if compiled:
        assert judged, "the compiled check accepted what jsonschema refuses"
    elif judged:  # its only stricter rule: "$" as the very end of a pattern's string
        assert _ends_a_string_with_newline(value)
    with mock.patch.object(metadata, "_valid_at_once", return_value=False):
        by_jsonschema_alone = _verdict(copy.deepcopy(value))
    assert _verdict(copy.deepcopy(value)) == by_jsonschema_alone


@settings(max_examples=300, deadline=None)
@given(value=_mutated())
def test_loading_the_json_gives_the_same_answer_as_jsonschema_alone(value: Any) -> None:
    raw = json.dumps(value, ensure_ascii=False).encode()

    def answer() -> object:
        try:
            return metadata.load(raw)
        except errors.EdocError as exc:
            return exc.code, str(exc)

    with mock.patch.object(metadata, "_valid_at_once", return_value=False):
        expected = answer()
    assert answer() == expected


def test_a_tuple_is_no_array_for_either() -> None:
    """fastjsonschema takes a tuple for an array, jsonschema does not: a mapping given to
    check() with one is judged by jsonschema alone."""
    data = sample_metadata(to=("000.00.00.H23",))
    assert metadata._valid_at_once(data)
    with pytest.raises(errors.InvalidField, match="is not of type 'array'"):
        metadata.check(data)


def test_a_final_newline_is_judged_by_jsonschema() -> None:
    data = sample_metadata(due_date="2026-12-31\n")
    assert not metadata._valid_at_once(data)
    assert metadata.check(data)["due_date"] == "2026-12-31\n"  # as before the compiled check


def test_the_compiled_check_is_the_schema_without_its_words() -> None:
    """Only annotations are left out: every check of the schema is compiled."""
    full = metadata._inlined(metadata._schema())
    stripped = metadata._checks_only(full)
    assert "description" in json.dumps(full) and "description" not in json.dumps(stripped)
    assert stripped["properties"].keys() == full["properties"].keys()
    assert jsonschema.Draft202012Validator(stripped).is_valid(sample_metadata())
