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


class _Fields:
    """An element's children by local name, read in one pass over them.

    ``find`` of a path of names answers the first match in document order; so does this
    (the first child of a name; under a name several children hold, the first of theirs),
    without ElementPath's work on every field (most of the cost of reading a model)."""

    __slots__ = ("_children", "_inner")

    def __init__(self, element: etree._Element) -> None:
        children: dict[str, list[etree._Element]] = {}
        for child in element:
            tag = child.tag
            same = children.get(tag)
            if same is None:
                children[tag] = [child]
            else:
                same.append(child)
        self._children = children
        # each child's own index, made once for every path through it (Code/CodeNumber…)
        self._inner: dict[tuple[str, int], _Fields] = {}

    def element(self, path: str) -> etree._Element | None:
        """The first element at ``path`` (local names joined by '/'), as find() has it."""
        if "/" in path:
            return self._nested(path)
        children = self._children.get(_TAGS[path])
        return children[0] if children else None

    def _nested(self, path: str) -> etree._Element | None:
        name, _, rest = path.partition("/")
        for position, child in enumerate(self._children.get(_TAGS[name], ())):
            inner = self._inner.get((name, position))
            if inner is None:
                inner = self._inner[name, position] = _Fields(child)
            found = inner.element(rest)
            if found is not None:
                return found
        return None

    def all(self, name: str) -> list[etree._Element]:
        return self._children.get(_TAGS[name], [])

    def text(self, path: str) -> str:
        element = self.element(path)
        return "" if element is None or element.text is None else element.text

    def required(self, name: str) -> etree._Element:
        element = self.element(name)
        if element is None:
            raise errors.MissingField(f"{name} is missing")
        return element


class _Texts:
    """The text of an element's first child of each name, read in one pass: what
    _Fields.text answers for a single name, for the elements that hold only fields (an
    organization, a hop...), without a call into _Fields for every field."""

    __slots__ = ("_texts",)

    def __init__(self, element: etree._Element) -> None:
        # from the last child back, so the first of a name is the one left
        self._texts = {child.tag: child.text for child in reversed(element)}

    def __call__(self, name: str) -> str:
        return self._texts.get(_TAGS[name]) or ""


class _Place:
    """Where an element stands below the root, as a compiled XPath: the first match is
    the one find() gives (matches come in document order), at a third of its cost."""

    def __init__(self, path: str) -> None:
        self._xpath = etree.XPath(path, namespaces={"edXML": NS})
        self.name = path.replace("edXML:", "")

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
    text = _Texts(element)
    return Organization(
        org_id=text("OrganId"),
        in_charge=text("OrganizationInCharge"),
        name=text("OrganName"),
        address=text("OrganAdd"),
        email=text("Email"),
        telephone=text("Telephone"),
        fax=text("Fax"),
        website=text("Website"),
    )


def _optional_int(fields: _Fields, path: str) -> int | None:
    text = fields.text(path)
    return int(text) if text else None


def _signer(message: _Fields) -> Signer | None:
    element = message.element("SignerInfo")
    if element is None:
        return None
    text = _Texts(element)
    return Signer(
        full_name=text("FullName"), position=text("Position"), competence=text("Competence")
    )


def _response_for(message: _Fields) -> ResponseFor | None:
    element = message.element("ResponseFor")
    return None if element is None else _response_for_of(element)


def _response_for_of(element: etree._Element) -> ResponseFor:
    text = _Texts(element)
    return ResponseFor(
        org_id=text("OrganId"),
        code=text("Code"),
        promulgation_date=parse_date(text("PromulgationDate")),
        document_id=text("DocumentId"),
    )


def message_header(root: etree._Element) -> etree._Element:
    return _MESSAGE.first(root)


def business_element(root: etree._Element) -> etree._Element:
    return _BUSINESS.first(root)


def manifest_element(root: etree._Element) -> etree._Element:
    return _MANIFEST.first(root)


def manifest_from(manifest: etree._Element) -> tuple[Attachment, ...]:
    return tuple(_attachment(_Texts(reference)) for reference in _Fields(manifest).all("Reference"))


def _attachment(text: _Texts) -> Attachment:
    return Attachment(
        content_id=text("ContentId"),
        name=text("AttachmentName"),
        content_type=text("ContentType"),
        description=text("Description"),
        size=int(text("Size")),
        sha256=text("Sha256"),
    )


def business_from(element: etree._Element) -> Business:
    text = _Texts(element)
    return Business(
        doc_type=BusinessDocType(int(text("BussinessDocType"))),
        reason=text("BussinessDocReason"),
        document_id=text("DocumentId"),
    )


def trace_from(root: etree._Element) -> tuple[TraceHop, ...]:
    return tuple(_hop(_Texts(hop)) for hop in _HOPS.every(root))


def _hop(text: _Texts) -> TraceHop:
    return TraceHop(org_id=text("OrganId"), timestamp=parse_timestamp(text("Timestamp")))


def message_from_parts(
    message: etree._Element,
    business: etree._Element,
    manifest: etree._Element,
    trace: tuple[TraceHop, ...] = (),
) -> Message:
    """Build the model from the signed parts (what edoc.signing verified)."""
    fields = _Fields(message)
    if fields.element("StatusCode") is not None:
        return _status_from(fields, business, manifest, trace)
    return _document_from(fields, business, manifest, trace)


def _status_from(
    message: _Fields,
    business: etree._Element,
    manifest: etree._Element,
    trace: tuple[TraceHop, ...],
) -> StatusUpdate:
    # A status answers a document: attachments or a revoke/update/replace of its own
    # would ride along to the document's sender in a form edoc never makes.
    if len(manifest) or business_from(business) != Business():
        raise errors.InvalidField("a status message carries no attachments and no business")
    return StatusUpdate(
        sender=_organization(message.required("From")),
        response_for=_response_for_of(message.required("ResponseFor")),
        code=StatusCode(message.text("StatusCode")),
        timestamp=parse_timestamp(message.text("Timestamp")),
        description=message.text("Description"),
        staff=Staff(
            department=message.text("StaffInfo/Department"),
            name=message.text("StaffInfo/Staff"),
            email=message.text("StaffInfo/Email"),
            mobile=message.text("StaffInfo/Mobile"),
        ),
        trace=trace,
    )


def _document_from(
    message: _Fields,
    business: etree._Element,
    manifest: etree._Element,
    trace: tuple[TraceHop, ...],
) -> Document:
    return Document(
        sender=_organization(message.required("From")),
        recipients=tuple(_organization(to) for to in message.all("To")),
        document_id=message.text("DocumentId"),
        code=Code(message.text("Code/CodeNumber"), message.text("Code/CodeNotation")),
        promulgation=Promulgation(
            place=message.text("PromulgationInfo/Place"),
            date=parse_date(message.text("PromulgationInfo/PromulgationDate")),
        ),
        doc_type=DocumentType(
            code=int(message.text("DocumentType/Type")),
            detail=_optional_int(message, "DocumentType/TypeDetail"),
            name=message.text("DocumentType/TypeName"),
        ),
        subject=message.text("Subject"),
        content=message.text("Content"),
        signer=_signer(message),
        due_date=parse_date(due) if (due := message.text("DueDate")) else None,
        to_places=tuple(
            place.text or ""
            for places in message.all("ToPlaces")
            for place in _Fields(places).all("Place")
        ),
        priority=Priority(int(message.text("OtherInfo/Priority"))),
        steering_type=_optional_int(message, "SteeringType") or 0,
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
