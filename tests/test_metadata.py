"""Metadata JSON: every refusal maps to its stable error code; good input builds the model."""

from __future__ import annotations

import datetime as dt
import json
import unicodedata
from collections.abc import Callable
from typing import Any

import pytest

from edoc import errors, metadata
from edoc.model import BusinessDocType, Organization, Priority

Change = Callable[[dict[str, Any]], None]


def _load(data: dict[str, Any]) -> Any:
    """Everything edoc does with metadata bytes: parse, check, build the model."""
    return metadata.to_document(metadata.load(json.dumps(data, ensure_ascii=False).encode()))


def _delete(*path: str) -> Change:
    def change(data: dict[str, Any]) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return change


def _set(value: Any, *path: str | int) -> Change:
    def change(data: dict[str, Any]) -> None:
        target: Any = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _answer(**changes: Any) -> Change:
    answer = {
        "org_id": "000.00.00.H23",
        "code": "45/UBND-VP",
        "promulgation_date": "2026-11-01",
        "document_id": "000.00.00.H23,2026/11/01,45/UBND-VP",
    }
    return _set(answer | changes, "response_for")


def test_sample_loads(sample_metadata: dict[str, Any]) -> None:
    document = _load(sample_metadata)
    assert document.sender == Organization(
        "000.00.12.H53", name="Sở Thông tin và Truyền thông tỉnh Tây Ninh"
    )
    assert [to.org_id for to in document.recipients] == ["000.00.00.H23", "000.00.07.H53"]
    assert document.promulgation.date == dt.date(2026, 11, 23)
    assert document.due_date == dt.date(2026, 12, 15)
    assert document.priority is Priority.URGENT
    assert document.business.doc_type is BusinessDocType.NEW
    assert document.signer is not None
    assert document.signer.competence == "KT. GIÁM ĐỐC"


def test_document_id_generated(sample_metadata: dict[str, Any]) -> None:
    assert _load(sample_metadata).document_id == "000.00.12.H53,2026/11/23,123/STTTT-VP"


def test_document_id_given_is_kept(sample_metadata: dict[str, Any]) -> None:
    sample_metadata["document_id"] = "000.00.12.H53,2026/11/20,99/UBND-VP"
    assert _load(sample_metadata).document_id == "000.00.12.H53,2026/11/20,99/UBND-VP"


def test_nfd_input_comes_out_nfc(sample_metadata: dict[str, Any]) -> None:
    subject = "V/v hỏa tốc: Đề nghị phối hợp ưu tiên"
    sample_metadata["subject"] = unicodedata.normalize("NFD", subject)
    sample_metadata["promulgation"]["place"] = unicodedata.normalize("NFD", "Tây Ninh")
    assert sample_metadata["subject"] != subject  # the input really is decomposed
    document = _load(sample_metadata)
    assert document.subject == unicodedata.normalize("NFC", subject)
    assert document.promulgation.place == "Tây Ninh"
    assert unicodedata.is_normalized("NFC", document.subject)


def test_organization_as_object_keeps_contacts(sample_metadata: dict[str, Any]) -> None:
    sample_metadata["to"] = [
        {"id": "000.00.00.H23", "name": "UBND tỉnh Hà Nam", "email": "vt@hanam.gov.vn"}
    ]
    (recipient,) = _load(sample_metadata).recipients
    assert recipient == Organization("000.00.00.H23", "UBND tỉnh Hà Nam", email="vt@hanam.gov.vn")


def test_response_for(sample_metadata: dict[str, Any]) -> None:
    _answer()(sample_metadata)
    answer = _load(sample_metadata).response_for
    assert answer is not None
    assert (answer.org_id, answer.promulgation_date) == ("000.00.00.H23", dt.date(2026, 11, 1))


def test_optional_fields_absent(sample_metadata: dict[str, Any]) -> None:
    for key in ("content", "signer", "due_date", "priority", "steering_type", "business"):
        del sample_metadata[key]
    document = _load(sample_metadata)
    assert (document.content, document.signer, document.due_date) == ("", None, None)
    assert document.priority is Priority.NORMAL
    assert document.business.doc_type is BusinessDocType.NEW
    assert document.response_for is None


def _refusals() -> list[Any]:
    long = "x" * 2001
    cases: list[tuple[str, Change, type[errors.EdocError]]] = [
        # a required field is missing → EDOC-ENV-001
        ("missing-from", _delete("from"), errors.MissingField),
        ("missing-to", _delete("to"), errors.MissingField),
        ("missing-code", _delete("code"), errors.MissingField),
        ("missing-code-number", _delete("code", "number"), errors.MissingField),
        ("missing-promulgation-date", _delete("promulgation", "date"), errors.MissingField),
        ("missing-type", _delete("type"), errors.MissingField),
        ("missing-type-name", _delete("type", "name"), errors.MissingField),
        ("missing-subject", _delete("subject"), errors.MissingField),
        ("missing-signer-name", _delete("signer", "full_name"), errors.MissingField),
        ("missing-business-type", _set({"reason": "x"}, "business"), errors.MissingField),
        ("missing-organization-id", _set({"name": "Sở"}, "from"), errors.MissingField),
        # an unknown field → EDOC-ENV-003
        ("unknown-top-level", _set(1, "urgency"), errors.UnknownField),
        ("unknown-in-code", _set("x", "code", "year"), errors.UnknownField),
        ("unknown-in-signer", _set("x", "signer", "title"), errors.UnknownField),
        ("unknown-in-business", _set("x", "business", "extra"), errors.UnknownField),
        ("unknown-in-promulgation", _set("x", "promulgation", "city"), errors.UnknownField),
        # a bad organization id → EDOC-ORG-001
        ("from-bad-form", _set("H53", "from"), errors.InvalidOrgId),
        ("from-object-bad-form", _set({"id": "000.00.H53"}, "from"), errors.InvalidOrgId),
        ("from-number-00", _set("000.00.00.H00", "from"), errors.InvalidOrgId),
        ("from-level-gap", _set("000.46.00.H44", "from"), errors.InvalidOrgId),
        ("from-trailing-newline", _set("000.00.12.H53\n", "from"), errors.InvalidOrgId),
        ("to-bad-form", _set(["000.00.00.H23", "000.00.07.h53"], "to"), errors.InvalidOrgId),
        ("to-level-gap", _set(["001.00.07.H53"], "to"), errors.InvalidOrgId),
        ("to-object-number-00", _set([{"id": "000.00.00.G00"}], "to"), errors.InvalidOrgId),
        ("response-for-bad-form", _answer(org_id="H53"), errors.InvalidOrgId),
        ("response-for-number-00", _answer(org_id="000.00.00.H00"), errors.InvalidOrgId),
        ("response-for-newline", _answer(org_id="000.00.00.H53\n"), errors.InvalidOrgId),
        ("response-for-unknown", _answer(page=1), errors.UnknownField),
        ("response-for-bad-date", _answer(promulgation_date="2026-02-30"), errors.InvalidField),
        # wrong types, ranges and lengths → EDOC-ENV-002
        ("subject-too-long", _set(long, "subject"), errors.InvalidField),
        ("subject-empty", _set("", "subject"), errors.InvalidField),
        ("subject-number", _set(5, "subject"), errors.InvalidField),
        ("to-not-list", _set("000.00.00.H23", "to"), errors.InvalidField),
        ("to-empty", _set([], "to"), errors.InvalidField),
        ("type-code-string", _set("1", "type", "code"), errors.InvalidField),
        ("type-code-negative", _set(-1, "type", "code"), errors.InvalidField),
        ("priority-5", _set(5, "priority"), errors.InvalidField),
        ("priority-bool", _set(True, "priority"), errors.InvalidField),
        ("priority-float", _set(1.5, "priority"), errors.InvalidField),
        ("steering-type-4", _set(4, "steering_type"), errors.InvalidField),
        ("business-type-4", _set({"type": 4}, "business"), errors.InvalidField),
        ("date-slashes", _set("2026/11/23", "promulgation", "date"), errors.InvalidField),
        ("date-impossible", _set("2026-02-30", "promulgation", "date"), errors.InvalidField),
        ("due-date-impossible", _set("2026-13-01", "due_date"), errors.InvalidField),
        ("place-too-long", _set("p" * 501, "promulgation", "place"), errors.InvalidField),
        ("content-not-string", _set(["a"], "content"), errors.InvalidField),
        ("metadata-is-list", lambda data: data.clear(), errors.MissingField),
        # the sender among its own recipients, a recipient twice → EDOC-ENV-002
        ("sender-is-recipient", _set(["000.00.12.H53"], "to"), errors.InvalidField),
        (
            "sender-is-recipient-object",
            _set(["000.00.00.H23", {"id": "000.00.12.H53"}], "to"),
            errors.InvalidField,
        ),
        ("duplicate-recipient", _set(["000.00.00.H23"] * 2, "to"), errors.InvalidField),
        # a DocumentId names its sender first → EDOC-ENV-002
        (
            "document-id-of-another-sender",
            _set("000.00.00.H23,2026/11/20,99/UBND-VP", "document_id"),
            errors.InvalidField,
        ),
        ("document-id-without-sender", _set("99/UBND-VP", "document_id"), errors.InvalidField),
        (
            "document-id-sender-prefix-only",
            _set("000.00.12.H5,2026/11/20,99/UBND-VP", "document_id"),
            errors.InvalidField,
        ),
        (
            "duplicate-recipient-mixed",
            _set(["000.00.00.H23", {"id": "000.00.00.H23", "name": "x"}], "to"),
            errors.InvalidField,
        ),
    ]
    return [pytest.param(change, error, id=name) for name, change, error in cases]


@pytest.mark.parametrize(("change", "error"), _refusals())
def test_refusal_maps_to_its_code(
    sample_metadata: dict[str, Any], change: Change, error: type[errors.EdocError]
) -> None:
    change(sample_metadata)
    with pytest.raises(errors.EdocError) as info:
        _load(sample_metadata)
    assert type(info.value) is error
    assert info.value.code == error.code


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"{", id="truncated"),
        pytest.param(b"{'from': 1}", id="single-quotes"),
        pytest.param(b"not json", id="garbage"),
        pytest.param(b'{"subject": "\xff\xfe"}', id="not-utf8"),
        pytest.param('{"subject": "Tây Ninh"}'.encode("utf-16"), id="utf16"),
        pytest.param('{"subject": "Tây Ninh"}'.encode("cp1258"), id="cp1258"),
        pytest.param(b"\x00\x01\x02", id="binary"),
    ],
)
def test_not_json_or_not_utf8(raw: bytes) -> None:
    with pytest.raises(errors.BadMetadataJson) as info:
        metadata.load(raw)
    assert info.value.code == "EDOC-ENV-004"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"[" * 60_000 + b"]" * 60_000, id="past-the-parser"),
        pytest.param(b'{"subject": ' + b"[" * 500 + b"]" * 500 + b"}", id="past-the-checks"),
    ],
)
def test_json_nested_too_deep_is_refused(raw: bytes) -> None:
    """It ran out of Python's stack (RecursionError: a 500 and a 3 KB traceback), in the
    JSON parser or, less deep, in what walks the value after it."""
    with pytest.raises(errors.BadMetadataJson, match="nested deeper than 32"):
        metadata.load(raw)


def test_non_object_json_is_refused() -> None:
    with pytest.raises(errors.InvalidField):
        metadata.load(b"[1, 2]")


def test_too_large() -> None:
    with pytest.raises(errors.TooLarge):
        metadata.load(b" " * (metadata.MAX_METADATA_BYTES + 1))


def test_errors_name_where(sample_metadata: dict[str, Any]) -> None:
    sample_metadata["to"][1] = "000.00.07.h53"
    with pytest.raises(errors.InvalidOrgId, match="to/1"):
        _load(sample_metadata)
