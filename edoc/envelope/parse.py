"""Tree → model: the message an envelope holds, whole or from its signed parts."""

from __future__ import annotations

from lxml import etree

from edoc import errors
from edoc.envelope.dates import parse_date, parse_timestamp
from edoc.envelope.names import NSMAP
from edoc.model import (
    Attachment,
    Business,
    BusinessDocType,
    Code,
    Document,
    DocumentType,
    Message,
    Organization,
    Priority,
    Promulgation,
    ResponseFor,
    Signer,
    Staff,
    StatusCode,
    StatusUpdate,
    TraceHop,
)


def _text(parent: etree._Element, path: str) -> str:
    element = parent.find(path, NSMAP)
    return "" if element is None or element.text is None else element.text


def _required(parent: etree._Element, path: str) -> etree._Element:
    element = parent.find(path, NSMAP)
    if element is None:
        raise errors.MissingField(f"{path.replace('edXML:', '')} is missing")
    return element


def _organization(element: etree._Element) -> Organization:
    return Organization(
        org_id=_text(element, "edXML:OrganId"),
        in_charge=_text(element, "edXML:OrganizationInCharge"),
        name=_text(element, "edXML:OrganName"),
        address=_text(element, "edXML:OrganAdd"),
        email=_text(element, "edXML:Email"),
        telephone=_text(element, "edXML:Telephone"),
        fax=_text(element, "edXML:Fax"),
        website=_text(element, "edXML:Website"),
    )


def _optional_int(parent: etree._Element, path: str) -> int | None:
    text = _text(parent, path)
    return int(text) if text else None


def _signer(message: etree._Element) -> Signer | None:
    element = message.find("edXML:SignerInfo", NSMAP)
    if element is None:
        return None
    return Signer(
        full_name=_text(element, "edXML:FullName"),
        position=_text(element, "edXML:Position"),
        competence=_text(element, "edXML:Competence"),
    )


def _response_for(message: etree._Element) -> ResponseFor | None:
    element = message.find("edXML:ResponseFor", NSMAP)
    return None if element is None else _response_for_of(element)


def _response_for_of(element: etree._Element) -> ResponseFor:
    return ResponseFor(
        org_id=_text(element, "edXML:OrganId"),
        code=_text(element, "edXML:Code"),
        promulgation_date=parse_date(_text(element, "edXML:PromulgationDate")),
        document_id=_text(element, "edXML:DocumentId"),
    )


def message_header(root: etree._Element) -> etree._Element:
    return _required(root, "edXML:edXMLEnvelope/edXML:edXMLHeader/edXML:MessageHeader")


def business_element(root: etree._Element) -> etree._Element:
    return _required(
        root, "edXML:edXMLEnvelope/edXML:edXMLHeader/edXML:TraceHeaderList/edXML:Bussiness"
    )


def manifest_element(root: etree._Element) -> etree._Element:
    return _required(root, "edXML:edXMLEnvelope/edXML:edXMLBody/edXML:edXMLManifest")


def manifest_from(manifest: etree._Element) -> tuple[Attachment, ...]:
    return tuple(
        Attachment(
            content_id=_text(reference, "edXML:ContentId"),
            name=_text(reference, "edXML:AttachmentName"),
            content_type=_text(reference, "edXML:ContentType"),
            description=_text(reference, "edXML:Description"),
            size=int(_text(reference, "edXML:Size")),
            sha256=_text(reference, "edXML:Sha256"),
        )
        for reference in manifest.iterfind("edXML:Reference", NSMAP)
    )


def business_from(element: etree._Element) -> Business:
    return Business(
        doc_type=BusinessDocType(int(_text(element, "edXML:BussinessDocType"))),
        reason=_text(element, "edXML:BussinessDocReason"),
        document_id=_text(element, "edXML:DocumentId"),
    )


def trace_from(root: etree._Element) -> tuple[TraceHop, ...]:
    path = "edXML:edXMLEnvelope/edXML:edXMLHeader/edXML:TraceHeaderList/edXML:TraceHeader"
    return tuple(
        TraceHop(
            org_id=_text(hop, "edXML:OrganId"),
            timestamp=parse_timestamp(_text(hop, "edXML:Timestamp")),
        )
        for hop in root.iterfind(path, NSMAP)
    )


def message_from_parts(
    message: etree._Element,
    business: etree._Element,
    manifest: etree._Element,
    trace: tuple[TraceHop, ...] = (),
) -> Message:
    """Build the model from the signed parts (what edoc.signing verified)."""
    if message.find("edXML:StatusCode", NSMAP) is not None:
        return _status_from(message, business, manifest, trace)
    return _document_from(message, business, manifest, trace)


def _status_from(
    message: etree._Element,
    business: etree._Element,
    manifest: etree._Element,
    trace: tuple[TraceHop, ...],
) -> StatusUpdate:
    # A status answers a document: attachments or a revoke/update/replace of its own
    # would ride along to the document's sender in a form edoc never makes.
    if len(manifest) or business_from(business) != Business():
        raise errors.InvalidField("a status message carries no attachments and no business")
    return StatusUpdate(
        sender=_organization(_required(message, "edXML:From")),
        response_for=_response_for_of(_required(message, "edXML:ResponseFor")),
        code=StatusCode(_text(message, "edXML:StatusCode")),
        timestamp=parse_timestamp(_text(message, "edXML:Timestamp")),
        description=_text(message, "edXML:Description"),
        staff=Staff(
            department=_text(message, "edXML:StaffInfo/edXML:Department"),
            name=_text(message, "edXML:StaffInfo/edXML:Staff"),
            email=_text(message, "edXML:StaffInfo/edXML:Email"),
            mobile=_text(message, "edXML:StaffInfo/edXML:Mobile"),
        ),
        trace=trace,
    )


def _document_from(
    message: etree._Element,
    business: etree._Element,
    manifest: etree._Element,
    trace: tuple[TraceHop, ...],
) -> Document:
    return Document(
        sender=_organization(_required(message, "edXML:From")),
        recipients=tuple(_organization(to) for to in message.iterfind("edXML:To", NSMAP)),
        document_id=_text(message, "edXML:DocumentId"),
        code=Code(
            _text(message, "edXML:Code/edXML:CodeNumber"),
            _text(message, "edXML:Code/edXML:CodeNotation"),
        ),
        promulgation=Promulgation(
            place=_text(message, "edXML:PromulgationInfo/edXML:Place"),
            date=parse_date(_text(message, "edXML:PromulgationInfo/edXML:PromulgationDate")),
        ),
        doc_type=DocumentType(
            code=int(_text(message, "edXML:DocumentType/edXML:Type")),
            detail=_optional_int(message, "edXML:DocumentType/edXML:TypeDetail"),
            name=_text(message, "edXML:DocumentType/edXML:TypeName"),
        ),
        subject=_text(message, "edXML:Subject"),
        content=_text(message, "edXML:Content"),
        signer=_signer(message),
        due_date=parse_date(due) if (due := _text(message, "edXML:DueDate")) else None,
        to_places=tuple(
            place.text or "" for place in message.iterfind("edXML:ToPlaces/edXML:Place", NSMAP)
        ),
        priority=Priority(int(_text(message, "edXML:OtherInfo/edXML:Priority"))),
        steering_type=_optional_int(message, "edXML:SteeringType") or 0,
        response_for=_response_for(message),
        business=business_from(business),
        attachments=manifest_from(manifest),
        trace=trace,
    )


def message_from_envelope(root: etree._Element) -> Message:
    """The model of a schema-valid envelope, read as is (no signature check)."""
    return message_from_parts(
        message_header(root), business_element(root), manifest_element(root), trace_from(root)
    )


def document_from_envelope(root: etree._Element) -> Document:
    return as_document(message_from_envelope(root))


def as_document(message: Message) -> Document:
    if not isinstance(message, Document):
        raise errors.InvalidField("a status message where a document was expected")
    return message
