"""Tree → model: the message an envelope holds, whole or from its signed parts."""

from __future__ import annotations

from lxml import etree

from edoc import errors
from edoc.envelope.dates import parse_date, parse_timestamp
from edoc.envelope.names import NS, q
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


class _Tags(dict[str, str]):
    """edXML tags by local name, each made once."""

    def __missing__(self, name: str) -> str:
        self[name] = tag = q(name)
        return tag


_TAGS = _Tags()


# The tags the model is read by, made once.
(_FROM, _TO, _DOCUMENT_ID, _CODE, _PROMULGATION, _DOCUMENT_TYPE, _SUBJECT, _CONTENT) = (
    q(name)
    for name in (
        "From",
        "To",
        "DocumentId",
        "Code",
        "PromulgationInfo",
        "DocumentType",
        "Subject",
        "Content",
    )
)
(_SIGNER, _DUE, _TO_PLACES, _PLACE, _OTHER, _STEERING, _RESPONSE_FOR, _STATUS_CODE) = (
    q(name)
    for name in (
        "SignerInfo",
        "DueDate",
        "ToPlaces",
        "Place",
        "OtherInfo",
        "SteeringType",
        "ResponseFor",
        "StatusCode",
    )
)
(_TIMESTAMP, _DESCRIPTION, _STAFF, _REFERENCE) = (
    q(name) for name in ("Timestamp", "Description", "StaffInfo", "Reference")
)
(_ORGAN_ID, _IN_CHARGE, _ORGAN_NAME, _ORGAN_ADD, _EMAIL, _TELEPHONE, _FAX, _WEBSITE) = (
    q(name)
    for name in (
        "OrganId",
        "OrganizationInCharge",
        "OrganName",
        "OrganAdd",
        "Email",
        "Telephone",
        "Fax",
        "Website",
    )
)


def _children(element: etree._Element) -> dict[str, list[etree._Element]]:
    """An element's children by tag, each list in document order: one pass over them.

    A field is then the first child of its name, and a nested field (Code/CodeNumber) the
    first such child of the first of those that has one, as ``find`` of the path has it
    (tests/test_fast_reading.py), without ElementPath's work for every field."""
    children: dict[str, list[etree._Element]] = {}
    for child in element:
        same = children.get(child.tag)
        if same is None:
            children[child.tag] = [child]
        else:
            same.append(child)
    return children


def _first(found: list[etree._Element] | None) -> etree._Element | None:
    return found[0] if found else None


def _text(found: list[etree._Element] | None) -> str:
    """The text of the first of ``found`` (a field of _children), or ''."""
    return (found[0].text or "") if found else ""


def _inner(found: list[etree._Element] | None, tag: str) -> etree._Element | None:
    """The first child tagged ``tag`` of the first of ``found`` that has one."""
    for parent in found or ():
        for child in parent:
            if child.tag == tag:
                return child
    return None


def _inner_text(found: list[etree._Element] | None, tag: str) -> str:
    element = _inner(found, tag)
    return "" if element is None else element.text or ""


def _texts(element: etree._Element) -> dict[str, str | None]:
    """The text of an element's first child of each tag (None where it has none), read in
    one pass: what _text answers of _children for a single tag, for the elements that hold
    only fields (an organization, a hop...). Read with ``.get(tag) or ""``."""
    # from the last child back, so the first of a name is the one left
    return {child.tag: child.text for child in reversed(element)}


class _Place:
    """Where an element stands below the root, as a compiled XPath: the first match is
    the one find() gives (matches come in document order), at a third of its cost."""

    def __init__(self, path: str) -> None:
        self._xpath = etree.XPath(path, namespaces={"edXML": NS})
        self.name = path.replace("edXML:", "")
        self.tag = q(self.name.rpartition("/")[2])  # what it finds is so named

    def every(self, root: etree._Element) -> list[etree._Element]:
        found: list[etree._Element] = self._xpath(root)
        return found

    def first(self, root: etree._Element) -> etree._Element:
        found = self.every(root)
        if not found:
            raise errors.MissingField(f"{self.name} is missing")
        return found[0]


_HEADER = "edXML:edXMLEnvelope/edXML:edXMLHeader"
_MESSAGE = _Place(f"{_HEADER}/edXML:MessageHeader")
_BUSINESS = _Place(f"{_HEADER}/edXML:TraceHeaderList/edXML:Bussiness")
_MANIFEST = _Place("edXML:edXMLEnvelope/edXML:edXMLBody/edXML:edXMLManifest")
_HOPS = _Place(f"{_HEADER}/edXML:TraceHeaderList/edXML:TraceHeader")


def _organization(element: etree._Element) -> Organization:
    text = _texts(element).get
    return Organization(
        org_id=text(_ORGAN_ID) or "",
        in_charge=text(_IN_CHARGE) or "",
        name=text(_ORGAN_NAME) or "",
        address=text(_ORGAN_ADD) or "",
        email=text(_EMAIL) or "",
        telephone=text(_TELEPHONE) or "",
        fax=text(_FAX) or "",
        website=text(_WEBSITE) or "",
    )


def _optional_int(text: str) -> int | None:
    return int(text) if text else None


def _signer(element: etree._Element | None) -> Signer | None:
    if element is None:
        return None
    text = _texts(element).get
    return Signer(
        full_name=text(_TAGS["FullName"]) or "",
        position=text(_TAGS["Position"]) or "",
        competence=text(_TAGS["Competence"]) or "",
    )


def _response_for(element: etree._Element | None) -> ResponseFor | None:
    return None if element is None else _response_for_of(element)


def _response_for_of(element: etree._Element) -> ResponseFor:
    text = _texts(element).get
    return ResponseFor(
        org_id=text(_ORGAN_ID) or "",
        code=text(_CODE) or "",
        promulgation_date=parse_date(text(_TAGS["PromulgationDate"]) or ""),
        document_id=text(_DOCUMENT_ID) or "",
    )


def message_header(root: etree._Element) -> etree._Element:
    return _MESSAGE.first(root)


def business_element(root: etree._Element) -> etree._Element:
    return _BUSINESS.first(root)


def manifest_element(root: etree._Element) -> etree._Element:
    return _MANIFEST.first(root)


def manifest_from(manifest: etree._Element) -> tuple[Attachment, ...]:
    return tuple(_attachment(reference) for reference in manifest.iterchildren(_REFERENCE))


def _attachment(reference: etree._Element) -> Attachment:
    text = _texts(reference).get
    return Attachment(
        content_id=text(_TAGS["ContentId"]) or "",
        name=text(_TAGS["AttachmentName"]) or "",
        content_type=text(_TAGS["ContentType"]) or "",
        description=text(_DESCRIPTION) or "",
        size=int(text(_TAGS["Size"]) or ""),
        sha256=text(_TAGS["Sha256"]) or "",
    )


def business_from(element: etree._Element) -> Business:
    text = _texts(element).get
    return Business(
        doc_type=BusinessDocType(int(text(_TAGS["BussinessDocType"]) or "")),
        reason=text(_TAGS["BussinessDocReason"]) or "",
        document_id=text(_DOCUMENT_ID) or "",
    )


def trace_from(root: etree._Element) -> tuple[TraceHop, ...]:
    return tuple(trace_hop(hop) for hop in _HOPS.every(root))


def trace_hop(element: etree._Element) -> TraceHop:
    """A TraceHop element's organization and time (its first child of each)."""
    text = _texts(element).get
    return TraceHop(org_id=text(_ORGAN_ID) or "", timestamp=parse_timestamp(text(_TIMESTAMP) or ""))


def message_from_parts(
    message: etree._Element,
    business: etree._Element,
    manifest: etree._Element,
    trace: tuple[TraceHop, ...] = (),
) -> Message:
    """Build the model from the signed parts (what edoc.signing verified)."""
    fields = _children(message)
    if _STATUS_CODE in fields:
        return _status_from(fields, business, manifest, trace)
    return _document_from(fields, business, manifest, trace)


def _required(fields: dict[str, list[etree._Element]], tag: str) -> etree._Element:
    found = fields.get(tag)
    if not found:
        raise errors.MissingField(f"{tag[len(NS) + 2 :]} is missing")
    return found[0]


def _status_from(
    message: dict[str, list[etree._Element]],
    business: etree._Element,
    manifest: etree._Element,
    trace: tuple[TraceHop, ...],
) -> StatusUpdate:
    # A status answers a document: attachments or a revoke/update/replace of its own
    # would ride along to the document's sender in a form edoc never makes.
    if len(manifest) or business_from(business) != Business():
        raise errors.InvalidField("a status message carries no attachments and no business")
    get = message.get
    staff = get(_STAFF)
    return StatusUpdate(
        sender=_organization(_required(message, _FROM)),
        response_for=_response_for_of(_required(message, _RESPONSE_FOR)),
        code=StatusCode(_text(get(_STATUS_CODE))),
        timestamp=parse_timestamp(_text(get(_TIMESTAMP))),
        description=_text(get(_DESCRIPTION)),
        staff=Staff(
            department=_inner_text(staff, _TAGS["Department"]),
            name=_inner_text(staff, _TAGS["Staff"]),
            email=_inner_text(staff, _TAGS["Email"]),
            mobile=_inner_text(staff, _TAGS["Mobile"]),
        ),
        trace=trace,
    )


def _document_from(
    message: dict[str, list[etree._Element]],
    business: etree._Element,
    manifest: etree._Element,
    trace: tuple[TraceHop, ...],
) -> Document:
    get = message.get
    code, promulgation, doc_type = get(_CODE), get(_PROMULGATION), get(_DOCUMENT_TYPE)
    due = _text(get(_DUE))
    return Document(
        sender=_organization(_required(message, _FROM)),
        recipients=tuple(_organization(to) for to in get(_TO, ())),
        document_id=_text(get(_DOCUMENT_ID)),
        code=Code(_inner_text(code, _TAGS["CodeNumber"]), _inner_text(code, _TAGS["CodeNotation"])),
        promulgation=Promulgation(
            place=_inner_text(promulgation, _PLACE),
            date=parse_date(_inner_text(promulgation, _TAGS["PromulgationDate"])),
        ),
        doc_type=DocumentType(
            code=int(_inner_text(doc_type, _TAGS["Type"])),
            detail=_optional_int(_inner_text(doc_type, _TAGS["TypeDetail"])),
            name=_inner_text(doc_type, _TAGS["TypeName"]),
        ),
        subject=_text(get(_SUBJECT)),
        content=_text(get(_CONTENT)),
        signer=_signer(_first(get(_SIGNER))),
        due_date=parse_date(due) if due else None,
        to_places=tuple(
            place.text or ""
            for places in get(_TO_PLACES, ())
            for place in places.iterchildren(_PLACE)
        ),
        priority=Priority(int(_inner_text(get(_OTHER), _TAGS["Priority"]))),
        steering_type=_optional_int(_text(get(_STEERING))) or 0,
        response_for=_response_for(_first(get(_RESPONSE_FOR))),
        business=business_from(business),
        attachments=manifest_from(manifest),
        trace=trace,
    )


# The places message_header, business_element, manifest_element and trace_from look in, in
# one XPath: its matches come in document order, so the first of each tag is what each
# finds first (tests/test_fast_verifying.py).
_ENVELOPE_PARTS = etree.XPath(
    " | ".join(place._xpath.path for place in (_MESSAGE, _BUSINESS, _MANIFEST, _HOPS)),
    namespaces={"edXML": NS},
)


def message_from_envelope(root: etree._Element) -> Message:
    """The model of a schema-valid envelope, read as is (no signature check)."""
    parts: dict[str, list[etree._Element]] = {}
    for element in _ENVELOPE_PARTS(root):
        same = parts.get(element.tag)
        if same is None:
            parts[element.tag] = [element]
        else:
            same.append(element)
    message, business, manifest = (_first_of(parts, p) for p in (_MESSAGE, _BUSINESS, _MANIFEST))
    hops = tuple(trace_hop(hop) for hop in parts.get(_HOPS.tag, ()))
    return message_from_parts(message, business, manifest, hops)


def _first_of(parts: dict[str, list[etree._Element]], place: _Place) -> etree._Element:
    found = parts.get(place.tag)
    if not found:
        raise errors.MissingField(f"{place.name} is missing")
    return found[0]


def document_from_envelope(root: etree._Element) -> Document:
    return as_document(message_from_envelope(root))


def as_document(message: Message) -> Document:
    if not isinstance(message, Document):
        raise errors.InvalidField("a status message where a document was expected")
    return message
