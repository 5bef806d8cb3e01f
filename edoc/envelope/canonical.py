"""Model → bytes with no tree: the sender's envelope written canonical by construction.

A sender used to build the envelope as a tree, copy it to sign, canonicalise the four
signed parts in it, parse each signature into it and serialise the lot. Here each signed
part is written from the model's fields as a string in exclusive C14N (what is digested:
the part's own namespace declaration, every element opened and closed, ``&#xD;`` for a
carriage return), and the package's markup of it derived from that (what lxml wrote:
the declaration on the root only, an empty manifest closed at once, ``&#13;``). Text XML
cannot carry (a control character, say, in an agency's status description) is refused
as InvalidField (EDOC-ENV-002, 400), where the tree writer raised lxml's ValueError.
tests/test_canonical_writer.py: for any message the package is byte for byte what the
tree writer made, and each part's bytes are its exclusive C14N where it stands.
"""

from __future__ import annotations

from dataclasses import dataclass

from edoc import xmlsafe
from edoc.envelope.dates import format_date, format_timestamp
from edoc.envelope.names import BUSINESS_ID, HEADER_ID, MANIFEST_ID, NS, ORIGIN_ID
from edoc.model import Document, Message, Organization, ResponseFor, StatusUpdate, TraceHop

# A part's elements are written as strings in exclusive C14N as they are made; the part
# as it stands in the package differs only in its apex (no declaration of its own, closed
# at once when empty: only an empty manifest) and in how a carriage return is written.

_DECLARATION = f' xmlns:edXML="{NS}"'
PACKAGE_OPEN = (
    f"<?xml version='1.0' encoding='utf-8'?>\n<edXML:edXML{_DECLARATION}>".encode()
)  # what lxml's xmlfile writes first
PACKAGE_CLOSE = b"</edXML:edXML>"


def _text(value: str | int) -> str:
    return xmlsafe.carried(str(value))


def _leaf(name: str, value: str | int) -> str:
    return f"<edXML:{name}>{escaped(_text(value), '&#xD;')}</edXML:{name}>"


def _element(name: str, children: list[str]) -> str:
    return f"<edXML:{name}>{''.join(children)}</edXML:{name}>"


def _optional(children: list[str], name: str, value: str | int | None) -> None:
    if value not in (None, ""):
        assert value is not None
        children.append(_leaf(name, value))


def _organization(name: str, org: Organization) -> str:
    fields = [_leaf("OrganId", org.org_id)]
    _optional(fields, "OrganizationInCharge", org.in_charge)
    _optional(fields, "OrganName", org.name)
    _optional(fields, "OrganAdd", org.address)
    _optional(fields, "Email", org.email)
    _optional(fields, "Telephone", org.telephone)
    _optional(fields, "Fax", org.fax)
    _optional(fields, "Website", org.website)
    return _element(name, fields)


def _response_for(answer: ResponseFor) -> str:
    return _element(
        "ResponseFor",
        [
            _leaf("OrganId", answer.org_id),
            _leaf("Code", answer.code),
            _leaf("PromulgationDate", format_date(answer.promulgation_date)),
            _leaf("DocumentId", answer.document_id),
        ],
    )


def _status_fields(status: StatusUpdate) -> list[str]:
    fields = [_response_for(status.response_for)]
    staff = status.staff
    if any((staff.department, staff.name, staff.email, staff.mobile)):
        info: list[str] = []
        _optional(info, "Department", staff.department)
        _optional(info, "Staff", staff.name)
        _optional(info, "Email", staff.email)
        _optional(info, "Mobile", staff.mobile)
        fields.append(_element("StaffInfo", info))
    fields.append(_leaf("StatusCode", status.code.value))
    _optional(fields, "Description", status.description)
    fields.append(_leaf("Timestamp", format_timestamp(status.timestamp)))
    return fields


def _document_fields(doc: Document) -> list[str]:
    fields = [_organization("To", recipient) for recipient in doc.recipients]
    fields.append(_leaf("DocumentId", doc.document_id))
    code = [_leaf("CodeNumber", doc.code.number), _leaf("CodeNotation", doc.code.notation)]
    fields.append(_element("Code", code))
    place = _leaf("Place", doc.promulgation.place)
    date = _leaf("PromulgationDate", format_date(doc.promulgation.date))
    fields.append(_element("PromulgationInfo", [place, date]))
    doc_type = [_leaf("Type", doc.doc_type.code)]
    _optional(doc_type, "TypeDetail", doc.doc_type.detail)
    doc_type.append(_leaf("TypeName", doc.doc_type.name))
    fields += [_element("DocumentType", doc_type), _leaf("Subject", doc.subject)]
    _optional(fields, "Content", doc.content)
    if doc.signer is not None:
        signer: list[str] = []
        _optional(signer, "Competence", doc.signer.competence)
        _optional(signer, "Position", doc.signer.position)
        signer.append(_leaf("FullName", doc.signer.full_name))
        fields.append(_element("SignerInfo", signer))
    if doc.due_date is not None:
        fields.append(_leaf("DueDate", format_date(doc.due_date)))
    if doc.to_places:
        fields.append(_element("ToPlaces", [_leaf("Place", place) for place in doc.to_places]))
    fields.append(_element("OtherInfo", [_leaf("Priority", int(doc.priority))]))
    fields.append(_leaf("SteeringType", doc.steering_type))
    if doc.response_for is not None:
        fields.append(_response_for(doc.response_for))
    return fields


def _message_header(message: Message) -> tuple[str, list[str]]:
    fields = [_organization("From", message.sender)]
    if isinstance(message, Document):
        fields += _document_fields(message)
    else:
        fields += _status_fields(message)
    return "MessageHeader", fields


def _hop(hop: TraceHop) -> tuple[str, list[str]]:
    fields = [_leaf("OrganId", hop.org_id), _leaf("Timestamp", format_timestamp(hop.timestamp))]
    return "TraceHeader", fields


def _business(message: Message) -> tuple[str, list[str]]:
    fields = [_leaf("BussinessDocType", int(message.business.doc_type))]
    _optional(fields, "BussinessDocReason", message.business.reason)
    _optional(fields, "DocumentId", message.business.document_id)
    return "Bussiness", fields


def _manifest(message: Message) -> tuple[str, list[str]]:
    references: list[str] = []
    for attachment in message.attachments:
        fields = [
            _leaf("ContentId", attachment.content_id),
            _leaf("AttachmentName", attachment.name),
            _leaf("ContentType", attachment.content_type),
        ]
        _optional(fields, "Description", attachment.description)
        fields += [_leaf("Size", attachment.size), _leaf("Sha256", attachment.sha256)]
        references.append(_element("Reference", fields))
    return "edXMLManifest", references


def escaped(text: str, carriage_return: str) -> str:
    """``text`` as element content: C14N and lxml differ only in how they write CR."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if "\r" in text:
        text = text.replace("\r", carriage_return)
    return text


def _part(apex: tuple[str, list[str]], part_id: str) -> tuple[bytes, str]:
    """A signed part: its exclusive C14N, and its markup as it stands in the package."""
    name, children = apex
    inner = "".join(children)
    canonical = f'<edXML:{name}{_DECLARATION} Id="{part_id}">{inner}</edXML:{name}>'.encode()
    if not children:  # lxml closes an empty element at once
        return canonical, f'<edXML:{name} Id="{part_id}"/>'
    if "&#xD;" in inner:  # only where a CR was: every "&" of text is written "&amp;"
        inner = inner.replace("&#xD;", "&#13;")
    return canonical, f'<edXML:{name} Id="{part_id}">{inner}</edXML:{name}>'


@dataclass(frozen=True)
class Written:
    """A message's envelope with room for its signatures: ``before`` them (from the XML
    declaration to TraceHeaderList's end), ``after`` them (to the envelope's end), and
    ``parts``, each signed part's exclusive C14N by its reference URI."""

    before: bytes
    after: bytes
    parts: dict[str, bytes]


def written(message: Message) -> Written:
    """The envelope of a new ``message`` (its trace the sender's one hop, as
    stamp_origin makes it) as the tree writer writes it."""
    if len(message.trace) != 1:
        raise ValueError("a new message's trace is the sender's one hop (stamp_origin)")
    header, header_markup = _part(_message_header(message), HEADER_ID)
    origin, origin_markup = _part(_hop(message.trace[0]), ORIGIN_ID)
    business, business_markup = _part(_business(message), BUSINESS_ID)
    manifest, manifest_markup = _part(_manifest(message), MANIFEST_ID)
    before = (
        f"<edXML:edXMLEnvelope{_DECLARATION}><edXML:edXMLHeader>{header_markup}"
        f"<edXML:TraceHeaderList>{origin_markup}{business_markup}</edXML:TraceHeaderList>"
    )
    after = (
        f"</edXML:edXMLHeader><edXML:edXMLBody>{manifest_markup}</edXML:edXMLBody>"
        "</edXML:edXMLEnvelope>"
    )
    parts = {
        f"#{HEADER_ID}": header,
        f"#{ORIGIN_ID}": origin,
        f"#{BUSINESS_ID}": business,
        f"#{MANIFEST_ID}": manifest,
    }
    return Written(PACKAGE_OPEN + before.encode(), after.encode(), parts)
