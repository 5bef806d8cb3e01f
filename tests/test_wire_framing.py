"""Frame bodies (edoc.framing) and the wire shapes carried in them: what is written reads
back, and every malformed layout is refused with its stable code."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edoc import errors, framing, wire


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=40))
def test_parts_read_back_as_written(parts: list[bytes]) -> None:
    body = framing.frame(parts)
    assert len(body) == framing.overhead(len(parts)) + sum(map(len, parts))
    assert framing.unframe(body, 40) == parts


def _header(*lengths: int) -> bytes:
    return framing.MAGIC + struct.pack(f">{1 + len(lengths)}I", len(lengths), *lengths)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", errors.BadFraming),
        (b"EDOCFRM1", errors.BadFraming),  # no count
        (b"EDOCFRM2" + struct.pack(">II", 1, 1) + b"x", errors.BadFraming),  # another magic
        (_header(), errors.BadFraming),  # no part
        (_header(1, 2)[:-1], errors.BadFraming),  # ends inside the lengths
        (_header(1, 2) + b"xy", errors.BadFraming),  # truncated: one byte short
        (_header(1, 2) + b"xyzw", errors.BadFraming),  # a byte left over
        (_header(2**32 - 1) + b"x", errors.BadFraming),  # a length past the body
        (_header(*[0] * 5), errors.TooLarge),  # more parts than taken
        (framing.MAGIC + struct.pack(">I", 2**32 - 1), errors.TooLarge),  # a count to exhaust
    ],
)
def test_malformed_frame_bodies_are_refused_with_stable_codes(
    body: bytes, error: type[errors.EdocError]
) -> None:
    with pytest.raises(error) as raised:
        framing.unframe(body, 4)
    assert type(raised.value) is error
    assert raised.value.code == ("EDOC-IN-004" if error is errors.BadFraming else "EDOC-IN-001")


def _notice(delivery_id: int, package: bytes | None) -> wire.DeliveryNotice:
    return wire.DeliveryNotice(
        delivery_id, 9, "000.00.01.H34", "document", "000.00.12.H53", "d", None, 0, 5, 1, package
    )


@given(st.lists(st.one_of(st.none(), st.binary(max_size=200)), max_size=20))
def test_a_framed_collect_answer_reads_back_as_json_one_does(
    packages: list[bytes | None],
) -> None:
    notices = [_notice(i + 1, package) for i, package in enumerate(packages)]
    as_json = json.loads(json.dumps({"deliveries": [n.to_json() for n in notices]}))
    assert wire.deliveries_from_frames(wire.deliveries_to_frames(notices)) == notices
    assert wire.deliveries_from_json(as_json) == notices


def test_a_framed_collect_answer_with_parts_missing_or_left_over_is_a_bad_answer() -> None:
    body = wire.deliveries_to_frames([_notice(1, b"<a/>"), _notice(2, None)])
    notices, package = framing.unframe(body, 3)
    for broken in (
        framing.frame([notices]),  # a notice says inline, no part
        framing.frame([notices, package, b"<b/>"]),  # a part no notice claims
        body[:-1],  # truncated
        b"{" + body,  # not a frame body
        framing.frame([b"not json", package]),
        framing.frame([b"[" * 100_000, package]),  # nested past Python's stack
    ):
        with pytest.raises(errors.BadAnswer):
            wire.deliveries_from_frames(broken)
    with pytest.raises(errors.BadAnswer, match="base64"):
        wire.DeliveryNotice.from_json({**_notice(1, None).to_json(), "package": "*not base64*"})


def test_batch_results_read_back_and_must_match_the_packages_sent() -> None:
    accepted = wire.PackageAccepted(7, "document", "d", None, ("000.00.01.H34",), "2026-12-01")
    results = [
        wire.PackageResult(202, accepted, resend=True),
        wire.PackageResult(422, code="EDOC-SIG-003", message="untrusted"),
        wire.PackageResult(429, code="EDOC-HUB-004", message="full", retry_after=5),
    ]
    body = json.loads(json.dumps({"results": [r.to_json() for r in results]}))
    assert wire.results_from_json(body, 3) == results
    assert "retry_after" not in body["results"][1]  # only where the single door has one
    with pytest.raises(errors.BadAnswer, match="3 packages were sent, 1"):
        wire.results_from_json({"results": body["results"][:1]}, 3)
    with pytest.raises(errors.BadAnswer, match="retry_after"):
        wire.results_from_json({"results": [{**body["results"][2], "retry_after": "5"}]}, 1)
    with pytest.raises(errors.BadAnswer):
        wire.results_from_json({"results": [{"status": 200, "accepted": accepted.to_json()}]}, 1)
    with pytest.raises(errors.BadAnswer):
        wire.results_from_json({"results": [{"status": 409, "error": {"code": 3}}]}, 1)
