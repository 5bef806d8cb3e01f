"""The document model: frozen dataclasses that everything else passes around.

These are what an edXML message *means*; edoc.envelope turns them into bytes and back.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import IntEnum


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


def make_document_id(sender: str, date: dt.date, code: Code) -> str:
    """QCVN form ``{sender OrganId},{yyyy/MM/dd},{number}/{notation}``."""
    return f"{sender},{date:%Y/%m/%d},{code}"
