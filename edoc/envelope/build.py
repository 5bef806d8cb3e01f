"""Model → tree: the ``edXML`` envelope of a message, and the trace hops added on the way."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from copy import deepcopy

from lxml import etree

from edoc import errors
from edoc.envelope.dates import format_date, format_timestamp
from edoc.envelope.names import (
    BUSINESS_ID,
    HEADER_ID,
    MANIFEST_ID,
    NSMAP,
    ORIGIN_ID,
    q,
)
from edoc.model import (
    Attachment,
    Document,
    Message,
    MessageT,
    Organization,
    ResponseFor,
    StatusUpdate,
    TraceHop,
    with_trace,
)


def _add(parent: etree._Element, name: str, text: str | int | None = None) -> etree._Element:
    element = etree.SubElement(parent, q(name))
    if text is not None:
        element.text = str(text)
    return element


def _add_optional(parent: etree._Element, name: str, text: str | int | None) -> None:
    if text not in (None, ""):
        _add(parent, name, text)


def _add_organization(parent: etree._Element, name: str, org: Organization) -> None:
    element = _add(parent, name)
    _add(element, "OrganId", org.org_id)
    _add_optional(element, "OrganizationInCharge", org.in_charge)
    _add_optional(element, "OrganName", org.name)
    _add_optional(element, "OrganAdd", org.address)
    _add_optional(element, "Email", org.email)
    _add_optional(element, "Telephone", org.telephone)
    _add_optional(element, "Fax", org.fax)
    _add_optional(element, "Website", org.website)


def _add_message_header(header: etree._Element, message: Message) -> None:
    element = _add(header, "MessageHeader")
    element.set("Id", HEADER_ID)
    _add_organization(element, "From", message.sender)
    if isinstance(message, Document):
        _add_document_header(element, message)
    else:
        _add_status_header(element, message)


def _add_response_for(parent: etree._Element, response_for: ResponseFor) -> None:
    answer = _add(parent, "ResponseFor")
    _add(answer, "OrganId", response_for.org_id)
    _add(answer, "Code", response_for.code)
    _add(answer, "PromulgationDate", format_date(response_for.promulgation_date))
    _add(answer, "DocumentId", response_for.document_id)


def _add_status_header(message: etree._Element, status: StatusUpdate) -> None:
    _add_response_for(message, status.response_for)
    staff = status.staff
    if any((staff.department, staff.name, staff.email, staff.mobile)):
        info = _add(message, "StaffInfo")
        _add_optional(info, "Department", staff.department)
        _add_optional(info, "Staff", staff.name)
        _add_optional(info, "Email", staff.email)
        _add_optional(info, "Mobile", staff.mobile)
    _add(message, "StatusCode", status.code.value)
    _add_optional(message, "Description", status.description)
    _add(message, "Timestamp", format_timestamp(status.timestamp))


def _add_document_header(message: etree._Element, doc: Document) -> None:
    for recipient in doc.recipients:
        _add_organization(message, "To", recipient)
    _add(message, "DocumentId", doc.document_id)
    code = _add(message, "Code")
    _add(code, "CodeNumber", doc.code.number)
    _add(code, "CodeNotation", doc.code.notation)
    promulgation = _add(message, "PromulgationInfo")
    _add(promulgation, "Place", doc.promulgation.place)
    _add(promulgation, "PromulgationDate", format_date(doc.promulgation.date))
    doc_type = _add(message, "DocumentType")
    _add(doc_type, "Type", doc.doc_type.code)
    _add_optional(doc_type, "TypeDetail", doc.doc_type.detail)
    _add(doc_type, "TypeName", doc.doc_type.name)
    _add(message, "Subject", doc.subject)
    _add_optional(message, "Content", doc.content)
    if doc.signer is not None:
        signer = _add(message, "SignerInfo")
        _add_optional(signer, "Competence", doc.signer.competence)
        _add_optional(signer, "Position", doc.signer.position)
        _add(signer, "FullName", doc.signer.full_name)
    if doc.due_date is not None:
        _add(message, "DueDate", format_date(doc.due_date))
    if doc.to_places:
        places = _add(message, "ToPlaces")
        for place in doc.to_places:
            _add(places, "Place", place)
    _add(_add(message, "OtherInfo"), "Priority", int(doc.priority))
    _add(message, "SteeringType", doc.steering_type)
    if doc.response_for is not None:
        _add_response_for(message, doc.response_for)


def _add_trace(header: etree._Element, doc: Message) -> None:
    trace = _add(header, "TraceHeaderList")
    for position, hop in enumerate(doc.trace):
        element = _add_trace_hop(trace, hop)
        if position == 0:
            element.set("Id", ORIGIN_ID)
    business = _add(trace, "Bussiness")
    business.set("Id", BUSINESS_ID)
    _add(business, "BussinessDocType", int(doc.business.doc_type))
    _add_optional(business, "BussinessDocReason", doc.business.reason)
    _add_optional(business, "DocumentId", doc.business.document_id)


def _add_trace_hop(trace: etree._Element, hop: TraceHop) -> etree._Element:
    element = etree.Element(q("TraceHeader"))
    _add(element, "OrganId", hop.org_id)
    _add(element, "Timestamp", format_timestamp(hop.timestamp))
    business = trace.find(q("Bussiness"))  # hops come before Bussiness
    if business is None:
        trace.append(element)
    else:
        business.addprevious(element)
    return element


def _add_manifest(body: etree._Element, attachments: Iterable[Attachment]) -> None:
    manifest = _add(body, "edXMLManifest")
    manifest.set("Id", MANIFEST_ID)
    for attachment in attachments:
        reference = _add(manifest, "Reference")
        _add(reference, "ContentId", attachment.content_id)
        _add(reference, "AttachmentName", attachment.name)
        _add(reference, "ContentType", attachment.content_type)
        _add_optional(reference, "Description", attachment.description)
        _add(reference, "Size", attachment.size)
        _add(reference, "Sha256", attachment.sha256)


def build_envelope(doc: Message) -> etree._Element:
    """The ``edXML`` root holding the envelope of ``doc`` (no attachment bodies)."""
    root = etree.Element(q("edXML"), nsmap=NSMAP)
    envelope = _add(root, "edXMLEnvelope")
    header = _add(envelope, "edXMLHeader")
    _add_message_header(header, doc)
    _add_trace(header, doc)
    _add_manifest(_add(envelope, "edXMLBody"), doc.attachments)
    return root


def stamp_origin(doc: MessageT, now: dt.datetime) -> MessageT:
    """A new document's trace: its sender's own hop, the signed time of sending."""
    return with_trace(doc, (TraceHop(doc.sender.org_id, now),))


def add_trace_hop(root: etree._Element, hop: TraceHop) -> None:
    """Record a hop the message passed; the signed parts are left untouched."""
    trace = root.find(f"{q('edXMLEnvelope')}/{q('edXMLHeader')}/{q('TraceHeaderList')}")
    if trace is None:
        raise errors.MissingField("TraceHeaderList missing")
    _add_trace_hop(trace, hop)


def envelope_only(root: etree._Element) -> etree._Element:
    """A copy of ``root`` without the attachment section: the part the signatures cover."""
    copy = etree.Element(root.tag, nsmap=root.nsmap)
    for child in root:
        if child.tag != q("AttachmentEncoded"):
            copy.append(deepcopy(child))
    return copy
