"""Organization identifiers: form, levels, the tree they make, and what is refused."""

from __future__ import annotations

import pytest

from edoc import errors
from edoc.orgid import OrgId, parse_root_code, root_of


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("000.00.00.H53", 1),
        ("000.00.12.H53", 2),
        ("000.46.24.H44", 3),
        ("001.46.24.H44", 4),
        ("000.00.00.G22", 1),
        ("999.99.99.Z99", 4),
    ],
)
def test_parse_valid_and_round_trip(text: str, level: int) -> None:
    org = OrgId.parse(text)
    assert str(org) == text
    assert org.level == level


def test_parse_fields() -> None:
    org = OrgId.parse("001.46.24.H44")
    assert (org.level4, org.level3, org.level2, org.letter, org.number) == (1, 46, 24, "H", 44)


@pytest.mark.parametrize(
    ("text", "root", "root_code"),
    [
        ("000.00.00.H53", "000.00.00.H53", "H53"),
        ("000.00.12.H53", "000.00.00.H53", "H53"),
        ("001.46.24.H44", "000.00.00.H44", "H44"),
        ("000.00.05.G12", "000.00.00.G12", "G12"),
        ("000.00.00.K01", "000.00.00.K01", "K01"),
    ],
)
def test_root_and_root_code(text: str, root: str, root_code: str) -> None:
    org = OrgId.parse(text)
    assert str(org.root) == root
    assert org.root_code == root_code
    assert org.root.level == 1
    assert root_of(text) == org.root  # the remembered answer is the same, asked again too
    assert root_of(text) is root_of(text)


def test_an_invalid_id_is_refused_by_root_of_every_time() -> None:
    for _ in range(2):  # lru_cache keeps no exception: nothing invalid is remembered
        with pytest.raises(errors.InvalidOrgId):
            root_of("000.46.00.H44")


@pytest.mark.parametrize(
    ("text", "parent"),
    [
        ("001.46.24.H44", "000.46.24.H44"),
        ("000.46.24.H44", "000.00.24.H44"),
        ("000.00.24.H44", "000.00.00.H44"),
        ("000.00.00.H44", None),
    ],
)
def test_parent(text: str, parent: str | None) -> None:
    found = OrgId.parse(text).parent()
    assert (None if found is None else str(found)) == parent


def test_kind() -> None:
    assert OrgId.parse("000.00.00.H53").kind == "province"
    assert OrgId.parse("000.00.00.G22").kind == "ministry"
    assert OrgId.parse("000.00.00.K01").kind == "other"


@pytest.mark.parametrize(
    ("child", "ancestor", "expected"),
    [
        ("000.46.24.H44", "000.00.24.H44", True),
        ("000.46.24.H44", "000.00.00.H44", True),
        ("001.46.24.H44", "000.00.00.H44", True),
        ("000.46.24.H44", "000.46.24.H44", True),  # itself
        ("000.00.24.H44", "000.46.24.H44", False),  # a parent is not under its child
        ("000.46.24.H44", "000.00.25.H44", False),  # sibling agency
        ("000.46.24.H44", "000.00.00.H45", False),  # another province
        ("000.00.12.H53", "000.00.00.G53", False),  # same number, other letter
        ("000.00.00.H53", "000.00.00.H53", True),
    ],
)
def test_is_under(child: str, ancestor: str, expected: bool) -> None:
    assert OrgId.parse(child).is_under(OrgId.parse(ancestor)) is expected


def test_ordering_and_hashing() -> None:
    a, b = OrgId.parse("000.00.12.H53"), OrgId.parse("000.00.12.H53")
    assert a == b
    assert len({a, b}) == 1
    assert OrgId.parse("000.00.00.H53") < OrgId.parse("000.00.01.H53")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("H53", id="short-code-only"),
        pytest.param("000.00.00.h53", id="lowercase-letter"),
        pytest.param("000.00.00.153", id="digit-for-letter"),
        pytest.param("00.00.00.H53", id="short-first-group"),
        pytest.param("0000.00.00.H53", id="long-first-group"),
        pytest.param("000.0.00.H53", id="short-second-group"),
        pytest.param("000.00.000.H53", id="long-third-group"),
        pytest.param("000.00.00.H5", id="one-digit-number"),
        pytest.param("000.00.00.H533", id="three-digit-number"),
        pytest.param("000-00-00-H53", id="dashes"),
        pytest.param("000.00.00.H53 ", id="trailing-space"),
        pytest.param(" 000.00.00.H53", id="leading-space"),
        pytest.param("000.00.00.H53\n", id="trailing-newline"),
        pytest.param("000.00.00.HH3", id="two-letters"),
        pytest.param("٠٠٠.٠٠.٠٠.H٥٣", id="arabic-indic-digits"),
        pytest.param("000.00.00.Đ53", id="non-ascii-letter"),
        pytest.param("000.00.00.H00", id="number-00"),
        pytest.param("000.46.00.H44", id="level3-without-level2"),
        pytest.param("001.00.24.H44", id="level4-without-level3"),
        pytest.param("001.00.00.H44", id="level4-alone"),
    ],
)
def test_parse_refuses(text: str) -> None:
    with pytest.raises(errors.InvalidOrgId) as info:
        OrgId.parse(text)
    assert info.value.code == "EDOC-ORG-001"


def test_parse_refuses_non_string() -> None:
    with pytest.raises(errors.InvalidOrgId):
        OrgId.parse(53)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "expected"),
    [("H53", "000.00.00.H53"), ("G22", "000.00.00.G22"), ("000.00.00.H41", "000.00.00.H41")],
)
def test_parse_root_code(code: str, expected: str) -> None:
    org = parse_root_code(code)
    assert str(org) == expected
    assert org.level == 1


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("000.00.12.H53", id="agency-not-root"),
        pytest.param("H00", id="number-00"),
        pytest.param("h53", id="lowercase"),
        pytest.param("H5", id="short"),
        pytest.param("", id="empty"),
        pytest.param("53", id="no-letter"),
    ],
)
def test_parse_root_code_refuses(code: str) -> None:
    with pytest.raises(errors.InvalidOrgId):
        parse_root_code(code)


def test_a_root_code_refused_is_said_as_given() -> None:
    """`--province BAD` said "not an organization identifier (AAA.BB.CC.DNN):
    '000.00.00.BAD'", an identifier the user never wrote."""
    with pytest.raises(errors.InvalidOrgId) as refused:
        parse_root_code("BAD")
    assert refused.value.message == "'BAD' is not a province or ministry code (e.g. H53, G01)"
    with pytest.raises(errors.InvalidOrgId, match="not a province or ministry identifier"):
        parse_root_code("000.00.12.H53")  # an identifier, of an agency
