"""The wire shapes spelled out field by field (to_json, DeliveryNotice._described) say
what dataclasses.asdict said of them, which they replaced on the hub's per-message path:
every field, under its name, with its value."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from edoc import wire

_text = st.text(max_size=20)
_int = st.integers(min_value=0, max_value=2**63 - 1)


@given(_int, _text, _text, st.none() | _text, st.lists(_text, max_size=4).map(tuple), _text)
def test_an_acceptance_says_what_asdict_said(
    id_: int, kind: str, document_id: str, code: str | None, to: tuple[str, ...], at: str
) -> None:
    accepted = wire.PackageAccepted(id_, kind, document_id, code, to, at)
    assert accepted.to_json() == dataclasses.asdict(accepted) | {"recipients": list(to)}
    assert wire.PackageAccepted.from_json(accepted.to_json()) == accepted


@given(
    st.builds(
        wire.DeliveryNotice,
        _int,
        _int,
        _text,
        _text,
        _text,
        _text,
        st.none() | _text,
        _int,
        _int,
        _int,
        st.none() | st.binary(max_size=64),
    )
)
def test_a_delivery_notice_says_what_asdict_said(notice: wire.DeliveryNotice) -> None:
    described = dataclasses.asdict(notice)
    del described["package"]
    assert notice._described() == described
    assert wire.deliveries_from_frames(wire.deliveries_to_frames([notice])) == [notice]
    assert wire.deliveries_from_json({"deliveries": [notice.to_json()]}) == [notice]
