"""model.with_trace against what it replaced, dataclasses.replace(message, trace=...)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edoc import metadata, model
from tests.support.pki import sample_metadata

_AT = dt.datetime(2026, 12, 1, 3, 4, 5, tzinfo=dt.UTC)
_DOCUMENT = metadata.to_document(metadata.check(sample_metadata()))
_STATUS = model.StatusUpdate(
    sender=model.Organization("000.00.00.H34"),
    response_for=model.ResponseFor("000.00.12.H53", "1/X", dt.date(2026, 11, 2), "d"),
    code=model.StatusCode.ARRIVED,
    timestamp=_AT,
)
_HOPS = st.lists(
    st.builds(
        model.TraceHop,
        st.sampled_from(["000.00.12.H53", "000.00.00.G22"]),
        st.datetimes(timezones=st.just(dt.UTC)),
    ),
    max_size=3,
).map(tuple)


@pytest.mark.parametrize("message", [_DOCUMENT, _STATUS], ids=["document", "status"])
@given(before=_HOPS, after=_HOPS)
def test_with_trace_is_replace(
    message: model.Message, before: tuple[model.TraceHop, ...], after: tuple[model.TraceHop, ...]
) -> None:
    original = dataclasses.replace(message, trace=before)
    changed = model.with_trace(original, after)
    assert changed == dataclasses.replace(original, trace=after)
    assert type(changed) is type(original) and changed.trace is after
    assert original.trace == before  # the original is untouched
    for field in dataclasses.fields(original):
        if field.name != "trace":
            assert getattr(changed, field.name) is getattr(original, field.name)
    with pytest.raises(dataclasses.FrozenInstanceError):
        changed.trace = before  # type: ignore[misc]
    assert hash(changed) == hash(dataclasses.replace(original, trace=after))
