"""The domain words of edoc.model: the status rules as tables, and the kinds, routes and
states the stores keep as text."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from edoc import resources
from edoc.model import (
    AGENCY_CODES,
    Code,
    DeliveryState,
    Document,
    DocumentType,
    MessageKind,
    Organization,
    Promulgation,
    RecipientState,
    ResponseFor,
    Route,
    StatusCode,
    StatusUpdate,
    TransferState,
    kind_of,
    make_document_id,
    may_follow,
    reached,
    recipient_state,
    state_after,
)
from edoc.node import openapi


def _codes(text: str) -> list[StatusCode]:
    return [StatusCode(code) for code in text.split()]


@pytest.mark.parametrize(
    ("given", "code", "allowed"),
    [
        # the processing flow moves forward, one stage or several at a time
        ("", "01", True),
        ("", "03", True),
        ("01", "02", True),
        ("01", "03", True),
        ("01 03", "04", True),
        ("01 03 04", "05", True),
        ("01 03 04 05", "06", True),
        ("01", "06", True),
        ("01 03", "06", True),
        # never back, nor sideways within a stage
        ("01 03", "01", False),
        ("01 04", "03", False),
        ("01 05", "04", False),
        ("01 03", "02", False),
        ("01 02", "03", False),
        # nothing of the flow after 02 or 06
        ("01 02", "04", False),
        ("01 02", "06", False),
        ("01 03 04 05 06", "05", False),
        # no code twice
        ("01", "01", False),
        ("01 03", "03", False),
        ("01 02", "02", False),
        ("01 03 04 05 06", "06", False),
        ("01 15", "15", False),
        ("13", "13", False),
        # the answers to a revoke or an update stand outside the flow
        ("01 02", "15", True),
        ("01 03 04 05 06", "16", True),
        ("01 06", "13", True),
        # ... and of 15 and 16 only one: agreeing to a change and refusing it
        ("01 15", "16", False),
        ("01 03 04 16", "15", False),
        ("15", "16", False),
        ("01 15", "04", True),
        ("01 03 16", "04", True),
        ("01 04 15", "03", False),
    ],
)
def test_may_follow(given: str, code: str, allowed: bool) -> None:
    assert may_follow(_codes(given), StatusCode(code)) is allowed


@pytest.mark.parametrize(
    ("shown", "event", "after"),
    [
        # a delivery outcome moves a recipient that has not answered yet
        ("queued", "sent", "sent"),
        ("queued", "delivered", "delivered"),
        ("queued", "failed", "failed"),
        ("sent", "failed", "failed"),
        # ... and never replaces a status (the transfer finished after the answer)
        ("01", "sent", "01"),
        ("04", "delivered", "04"),
        ("16", "failed", "16"),
        # the first status replaces any delivery state
        ("queued", "01", "01"),
        ("sent", "03", "03"),
        ("failed", "01", "01"),
        # statuses move forward as may_follow says; one overtaken by a later one does not
        ("01", "03", "03"),
        ("03", "04", "04"),
        ("01", "06", "06"),
        ("04", "03", "04"),
        ("06", "05", "06"),
        ("02", "03", "02"),
        ("03", "03", "03"),
        # 13 shows over the flow, and gives way to it again
        ("06", "13", "13"),
        ("13", "02", "02"),
        # an answer to a change joins the history only: the processing state stays shown
        ("04", "15", "04"),
        ("06", "16", "06"),
        ("sent", "15", "sent"),
        ("01", "16", "01"),
        ("15", "05", "05"),  # (shown by a store written before)
    ],
)
def test_state_after(shown: str, event: str, after: str) -> None:
    assert state_after(recipient_state(shown), recipient_state(event)) == after


def test_agency_codes_are_the_api_contract() -> None:
    # DESIGN.md: an agency may post 02-06, 15 and 16; 01 is the node's automatic answer
    assert sorted(AGENCY_CODES) == ["02", "03", "04", "05", "06", "15", "16"]
    assert StatusCode.ARRIVED not in AGENCY_CODES


def test_the_agency_api_offers_the_agency_codes() -> None:
    paths = openapi.SPEC["paths"]
    status = paths["/api/v1/inbox/{id}/status"]["post"]
    schema = status["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["code"]["enum"] == sorted(AGENCY_CODES)
    batch = paths["/api/v1/inbox/statuses"]["post"]
    entries = batch["requestBody"]["content"]["application/json"]["schema"]["properties"]
    entry = entries["statuses"]["items"]
    assert entry["properties"]["code"]["enum"] == sorted(AGENCY_CODES)
    assert entry["required"] == ["id", "code"]


def test_final_and_stage() -> None:
    assert [code for code in StatusCode if code.final] == ["02", "06"]
    assert [code for code in StatusCode if code.stage is None] == ["13", "15", "16"]
    assert StatusCode.REJECTED.stage == StatusCode.ACCEPTED.stage


def test_every_status_code_is_in_the_schema_and_back() -> None:
    """The XSD is the other place a new status code goes: the two lists must agree."""
    xsd = resources.schema("edxml.xsd").read_text(encoding="utf-8")
    block = re.search(r'name="StatusCode">(.*?)</xs:element>', xsd, re.DOTALL)
    assert block is not None
    assert re.findall(r'enumeration value="(\d+)"', block.group(1)) == list(StatusCode)


@pytest.mark.parametrize(
    ("text", "state"),
    [
        ("queued", DeliveryState.QUEUED),
        ("sent", DeliveryState.SENT),
        ("delivered", DeliveryState.DELIVERED),
        ("failed", DeliveryState.FAILED),
        ("01", StatusCode.ARRIVED),
        ("16", StatusCode.REFUSES_CHANGE),
    ],
)
def test_recipient_state_from_its_stored_text(text: str, state: RecipientState) -> None:
    assert recipient_state(text) is state


def test_recipient_state_refuses_other_text() -> None:
    with pytest.raises(ValueError, match="mixed"):
        recipient_state("mixed")


@pytest.mark.parametrize(
    ("text", "has_it"),
    [
        ("queued", False),
        ("sent", False),
        ("failed", False),
        ("delivered", True),
        ("01", True),
        ("02", True),
        ("15", True),
    ],
)
def test_reached(text: str, has_it: bool) -> None:
    assert reached(recipient_state(text)) is has_it


def test_stored_words_keep_their_text() -> None:
    """Stores and the JSON API hold these as text: the words must not change."""
    assert [str(k) for k in MessageKind] == ["document", "status"]
    assert [str(r) for r in Route] == ["hub", "local"]
    assert [str(s) for s in TransferState] == ["pending", "done", "failed"]
    assert [str(s) for s in DeliveryState] == ["queued", "sent", "delivered", "failed"]


def test_kind_of() -> None:
    sender, recipient = Organization("000.00.01.H53"), Organization("000.00.02.H41")
    code, day = Code("12", "UBND-VP"), dt.date(2026, 3, 2)
    document = Document(
        sender=sender,
        recipients=(recipient,),
        document_id=make_document_id(sender.org_id, day, code),
        code=code,
        promulgation=Promulgation("Hà Nội", day),
        doc_type=DocumentType(1, "Công văn"),
        subject="Về việc thử",
    )
    status = StatusUpdate(
        sender=recipient,
        response_for=ResponseFor(sender.org_id, str(code), day, document.document_id),
        code=StatusCode.ARRIVED,
        timestamp=dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC),
    )
    assert kind_of(document) is MessageKind.DOCUMENT
    assert kind_of(status) is MessageKind.STATUS
