"""The document model: frozen dataclasses that everything else passes around.

These are what an edXML message *means*; edoc.envelope turns them into bytes and back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import TypeVar

from edoc import errors


class Priority(IntEnum):
    """OtherInfo/Priority (độ khẩn)."""

    NORMAL = 0  # thường
    URGENT = 1  # khẩn
    VERY_URGENT = 2  # thượng khẩn
    EXPRESS = 3  # hỏa tốc
    EXPRESS_TIMED = 4  # hỏa tốc hẹn giờ


class BusinessDocType(IntEnum):
    """TraceHeaderList/Bussiness/BussinessDocType: what this message does to a document."""

    NEW = 0
    REVOKE = 1
    UPDATE = 2
    REPLACE = 3


STEERING_TYPES = range(0, 4)  # samples disagree on the meaning; all of 0..3 are accepted


@dataclass(frozen=True)
class Organization:
    org_id: str
    name: str = ""
    in_charge: str = ""  # OrganizationInCharge
    address: str = ""
    email: str = ""
    telephone: str = ""
    fax: str = ""
    website: str = ""


@dataclass(frozen=True)
class Code:
    number: str
    notation: str

    def __str__(self) -> str:
        return f"{self.number}/{self.notation}"


@dataclass(frozen=True)
class Promulgation:
    place: str
    date: dt.date


@dataclass(frozen=True)
class DocumentType:
    code: int
    name: str
    detail: int | None = None  # TypeDetail


@dataclass(frozen=True)
class Signer:
    full_name: str
    position: str = ""
    competence: str = ""


@dataclass(frozen=True)
class ResponseFor:
    """The document this message answers."""

    org_id: str
    code: str
    promulgation_date: dt.date
    document_id: str


@dataclass(frozen=True)
class Business:
    doc_type: BusinessDocType = BusinessDocType.NEW
    reason: str = ""
    document_id: str = ""  # the document a revoke/update/replace is about


@dataclass(frozen=True)
class TraceHop:
    org_id: str
    timestamp: dt.datetime


@dataclass(frozen=True)
class Attachment:
    """One manifest entry: what the sender attached, by content id, with its digest."""

    content_id: str
    name: str
    content_type: str
    size: int
    sha256: str  # lowercase hex
    description: str = ""


@dataclass(frozen=True)
class Document:
    sender: Organization
    recipients: tuple[Organization, ...]
    document_id: str
    code: Code
    promulgation: Promulgation
    doc_type: DocumentType
    subject: str
    content: str = ""
    signer: Signer | None = None
    due_date: dt.date | None = None
    to_places: tuple[str, ...] = ()
    priority: Priority = Priority.NORMAL
    steering_type: int = 0
    response_for: ResponseFor | None = None
    business: Business = field(default_factory=Business)
    attachments: tuple[Attachment, ...] = ()
    trace: tuple[TraceHop, ...] = ()

    @property
    def about(self) -> str:
        """The DocumentId this message concerns: its own."""
        return self.document_id


def make_document_id(sender: str, date: dt.date, code: Code) -> str:
    """QCVN form ``{sender OrganId},{yyyy/MM/dd},{number}/{notation}``."""
    # not strftime: glibc's %Y does not pad years before 1000 (edoc.envelope.dates)
    return f"{sender},{date.year:04d}/{date.month:02d}/{date.day:02d},{code}"


def check_document_id(doc: Document) -> None:
    """A DocumentId begins with its sender's OrganId (the QCVN form), so no two senders
    name a document alike. The hub keys a status by its responder and the DocumentId:
    a node naming its document as another province named one would otherwise have the
    answers to the real one refused as given already."""
    if not doc.document_id.startswith(f"{doc.sender.org_id},"):
        raise errors.InvalidField(
            f"DocumentId {doc.document_id!r} does not begin with its sender {doc.sender.org_id}"
        )


class StatusCode(StrEnum):
    """What a recipient says about a document it received (QCVN 102 status messages)."""

    ARRIVED = "01"  # đã đến
    REJECTED = "02"  # từ chối tiếp nhận
    ACCEPTED = "03"  # đã tiếp nhận
    ASSIGNED = "04"  # phân công
    PROCESSING = "05"  # đang xử lý
    COMPLETED = "06"  # hoàn thành
    RECALLED = "13"  # thu hồi / hủy
    AGREES_TO_CHANGE = "15"  # đồng ý thu hồi / cập nhật
    REFUSES_CHANGE = "16"  # từ chối thu hồi / cập nhật

    @property
    def stage(self) -> int | None:
        """Order of the processing flow; None for the revoke/update answers, outside it."""
        return _STAGES.get(self)

    @property
    def final(self) -> bool:
        """Nothing of the processing flow follows it."""
        return self in (StatusCode.REJECTED, StatusCode.COMPLETED)

    @property
    def answers_change(self) -> bool:
        """The recipient's answer to a revoke, update or replacement of the document it
        received (15 agrees, 16 refuses), not a step of its processing."""
        return self in (StatusCode.AGREES_TO_CHANGE, StatusCode.REFUSES_CHANGE)


# A new status code goes above, here and in schemas/edxml.xsd: its place in the processing
# flow (none for an answer outside it) and whether agencies may post it.
_STAGES = {
    StatusCode.ARRIVED: 1,
    StatusCode.REJECTED: 2,
    StatusCode.ACCEPTED: 2,
    StatusCode.ASSIGNED: 3,
    StatusCode.PROCESSING: 4,
    StatusCode.COMPLETED: 5,
}
# the agency API's contract: 02-06, 15 and 16 (01 is the node's own answer on arrival)
AGENCY_CODES = frozenset(
    {
        StatusCode.REJECTED,
        StatusCode.ACCEPTED,
        StatusCode.ASSIGNED,
        StatusCode.PROCESSING,
        StatusCode.COMPLETED,
        StatusCode.AGREES_TO_CHANGE,
        StatusCode.REFUSES_CHANGE,
    }
)


def may_follow(given: Iterable[StatusCode], code: StatusCode) -> bool:
    """Whether a responder that already sent ``given`` may send ``code`` now.

    No code is sent twice (a replay); the processing flow 01 → 02|03 → 04 → 05 → 06 only
    moves forward and nothing in it follows 02 or 06. 13, 15 and 16 stand outside the
    flow; of 15 and 16 only one: agreeing to a change of the document and refusing it
    both would leave its sender not knowing which holds.
    """
    given = set(given)
    if code in given:
        return False
    if code.answers_change:
        return not any(previous.answers_change for previous in given)
    if code.stage is None:
        return True
    if any(previous.final for previous in given):
        return False
    return code.stage > max((p.stage for p in given if p.stage is not None), default=0)


@dataclass(frozen=True)
class Staff:
    department: str = ""
    name: str = ""
    email: str = ""
    mobile: str = ""


@dataclass(frozen=True)
class StatusUpdate:
    """A recipient's signed answer about a document, relayed to the document's sender."""

    sender: Organization  # the responding organization
    response_for: ResponseFor
    code: StatusCode
    timestamp: dt.datetime
    description: str = ""
    staff: Staff = field(default_factory=Staff)
    trace: tuple[TraceHop, ...] = ()
    business: Business = field(default_factory=Business)
    attachments: tuple[Attachment, ...] = ()

    @property
    def about(self) -> str:
        """The DocumentId this message concerns: the answered document's."""
        return self.response_for.document_id


Message = Document | StatusUpdate
MessageT = TypeVar("MessageT", bound=Document | StatusUpdate)


def with_trace(message: MessageT, trace: tuple[TraceHop, ...]) -> MessageT:
    """``message`` with ``trace`` instead of its own: what dataclasses.replace makes, without
    reading every field and running the frozen __init__ (5.6 -> 0.8 us for a document;
    it is done at every signing and every verification). The other fields are the same
    objects, as replace gives them (tests/test_model.py)."""
    copied = object.__new__(type(message))
    copied.__dict__.update(message.__dict__)
    object.__setattr__(copied, "trace", trace)
    return copied


class MessageKind(StrEnum):
    """What a stored message is: a document, or a status about one."""

    DOCUMENT = "document"
    STATUS = "status"


def kind_of(message: Message) -> MessageKind:
    return MessageKind.DOCUMENT if isinstance(message, Document) else MessageKind.STATUS


class Route(StrEnum):
    """The way a node's outbox carries a message."""

    HUB = "hub"  # to recipients other nodes serve
    LOCAL = "local"  # to agencies this node serves itself


class TransferState(StrEnum):
    """Where one outbox transfer stands."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class DeliveryState(StrEnum):
    """How a message stands with one recipient until the recipient's first status."""

    QUEUED = "queued"
    SENT = "sent"  # the hub has it
    DELIVERED = "delivered"  # in the recipient's inbox (a local recipient)
    FAILED = "failed"


RecipientState = DeliveryState | StatusCode
"""What a sender sees of one recipient: a delivery state, then the latest status code."""


def recipient_state(text: str) -> RecipientState:
    """The state a store keeps as text (``"queued"``, ``"03"``...)."""
    try:
        return StatusCode(text)
    except ValueError:
        return DeliveryState(text)


def reached(state: RecipientState) -> bool:
    """Whether the recipient has the message: it was delivered or it answered."""
    return isinstance(state, StatusCode) or state is DeliveryState.DELIVERED


def state_after(shown: RecipientState, event: RecipientState) -> RecipientState:
    """What a recipient shows after ``event`` when it showed ``shown``.

    A status moves it only where :func:`may_follow` lets the status follow the one shown (one
    overtaken by a later status only joins the history); a delivery outcome never replaces a
    status (a transfer that finishes after the recipient answered). An answer to a change
    of the document (15, 16) only joins the history: the sender goes on seeing where the
    recipient's processing stands (a 16 shown over 04 hid that it was assigned).
    """
    if isinstance(event, StatusCode) and event.answers_change:
        return shown
    if not isinstance(shown, StatusCode):
        return event
    if isinstance(event, StatusCode) and may_follow([shown], event):
        return event
    return shown
