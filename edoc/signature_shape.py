"""The one shape edoc's XML signatures take, pinned before any arithmetic.

Each signature (see edoc.signing) stands in ``edXMLHeader`` after ``TraceHeaderList``
and is, element for element, ``SIGNATURE``: SignedInfo with exactly the four references
edoc makes (exclusive C14N, RSA-SHA256, SHA-256), the SignatureValue, and KeyInfo holding
the signer's one certificate; attributes only where edoc writes them, text only in the
digests, the value and the certificate. Nothing of the signature namespace stands
anywhere else. Only SignedInfo is signed: anything more in a signature, beside it or in
a hop a relay added (not signed either) would reach the recipient unverified, so it is
refused (``UnsignedContent``), as is SignedInfo of another shape (``WrappedSignature``).
The schema keeps other elements out of the header too; these checks do not rely on it.
"""

from __future__ import annotations

import base64
import binascii

from cryptography import x509
from lxml import etree

from edoc import envelope, errors
from edoc.envelope import NSMAP as ED_NSMAP

DS = "http://www.w3.org/2000/09/xmldsig#"
DSNS = {"ds": DS}
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"

# Reference URI → where the referenced element must be (relative to the edXML root).
SIGNED_PARTS = {
    f"#{envelope.HEADER_ID}": "edXML:edXMLEnvelope/edXML:edXMLHeader/edXML:MessageHeader",
    f"#{envelope.ORIGIN_ID}": "edXML:edXMLEnvelope/edXML:edXMLHeader/edXML:TraceHeaderList"
    "/edXML:TraceHeader[1]",
    f"#{envelope.BUSINESS_ID}": "edXML:edXMLEnvelope/edXML:edXMLHeader/edXML:TraceHeaderList"
    "/edXML:Bussiness",
    f"#{envelope.MANIFEST_ID}": "edXML:edXMLEnvelope/edXML:edXMLBody/edXML:edXMLManifest",
}
REFERENCES = tuple(SIGNED_PARTS)


def header(root: etree._Element) -> etree._Element:
    """edXMLHeader, where the signatures stand."""
    found = root.find("edXML:edXMLEnvelope/edXML:edXMLHeader", ED_NSMAP)
    if found is None:
        raise errors.MissingField("edXMLHeader is missing")
    return found


def signatures(root: etree._Element) -> list[etree._Element]:
    """The signatures in their one allowed place, refusing any anywhere else, and any
    other element of their namespace beside them (a ds:Object no signature covers)."""
    beside = list(header(root).iterchildren(f"{{{DS}}}*"))
    placed = [element for element in beside if element.tag == f"{{{DS}}}Signature"]
    if _SIGNATURES_ANYWHERE(root) != len(placed):
        raise errors.WrappedSignature("a signature outside edXMLHeader")
    if not placed:
        raise errors.MissingSignature("the message carries no signature")
    if len(placed) > 2:
        raise errors.WrappedSignature("more than two signatures")
    if len(beside) != len(placed):
        raise errors.UnsignedContent("an XML-signature element beside the signatures")
    return placed


_SIGNATURES_ANYWHERE = etree.XPath("count(//ds:Signature)", namespaces=DSNS)


def algorithm(element: etree._Element | None) -> str:
    return "" if element is None else str(element.get("Algorithm", ""))


def check_structure(signature: etree._Element) -> x509.Certificate:
    """Exactly the shape edoc signs, and nothing unsigned in it: refuse extra references,
    objects, other algorithms, anything beside the value and the one certificate; return
    that certificate."""
    children = [child.tag for child in signature]
    if children != [f"{{{DS}}}{name}" for name in ("SignedInfo", "SignatureValue", "KeyInfo")]:
        raise errors.WrappedSignature("signature must hold SignedInfo, SignatureValue, KeyInfo")
    info = signature.find("ds:SignedInfo", DSNS)
    if algorithm(info.find("ds:CanonicalizationMethod", DSNS)) != EXC_C14N:
        raise errors.UnsupportedAlgorithm("canonicalization must be exclusive C14N")
    if algorithm(info.find("ds:SignatureMethod", DSNS)) != RSA_SHA256:
        raise errors.UnsupportedAlgorithm("signature method must be RSA-SHA256")
    references = info.findall("ds:Reference", DSNS)
    if tuple(ref.get("URI") for ref in references) != REFERENCES:
        raise errors.WrappedSignature(f"signature must reference exactly {', '.join(REFERENCES)}")
    for reference in references:
        if algorithm(reference.find("ds:DigestMethod", DSNS)) != SHA256:
            raise errors.UnsupportedAlgorithm("digest method must be SHA-256")
        transforms = [algorithm(t) for t in reference.findall("ds:Transforms/ds:Transform", DSNS)]
        if transforms != [EXC_C14N]:
            raise errors.UnsupportedAlgorithm(f"unexpected transforms {transforms}")
    _check_shape(signature)
    try:
        return x509.load_der_x509_certificate(base64_bytes(signature[2][0][0].text or ""))
    except ValueError as exc:
        raise errors.UntrustedCertificate(f"unreadable certificate: {exc}") from None


SIGNED_INFO = (
    "SignedInfo",
    "CanonicalizationMethod",
    "SignatureMethod",
    *("Reference", "Transforms", "Transform", "DigestMethod", "DigestValue") * len(REFERENCES),
)
# What follows SignedInfo in a signature: the value and the signer's certificate.
UNSIGNED_PARTS = ("SignatureValue", "KeyInfo", "X509Data", "X509Certificate")
SIGNATURE = ("Signature", *SIGNED_INFO, *UNSIGNED_PARTS)  # every element, in document order

# The attributes edoc writes, by element; every other element has none.
_ATTRIBUTES = {
    f"{{{DS}}}{name}": [attribute]
    for name, attribute in (
        ("CanonicalizationMethod", "Algorithm"),
        ("SignatureMethod", "Algorithm"),
        ("Reference", "URI"),
        ("Transform", "Algorithm"),
        ("DigestMethod", "Algorithm"),
    )
}
_TEXT_HOLDERS = {f"{{{DS}}}{name}" for name in ("DigestValue", "SignatureValue", "X509Certificate")}
# Each element of a signature as (tag, attribute names), compared in one go, and whether
# it may hold text: a forged header in KeyInfo, an element after the value's text or an
# Id anywhere changes the first, a forged subject as KeyInfo's text the second.
_SHAPE = [(tag, _ATTRIBUTES.get(tag, [])) for tag in (f"{{{DS}}}{name}" for name in SIGNATURE)]
_HOLDS_TEXT = [tag in _TEXT_HOLDERS for tag, _ in _SHAPE]
_VALUE_AT = 1 + len(SIGNED_INFO)  # where SignatureValue stands, after SignedInfo's elements


def _first_stray_text(elements: list[etree._Element]) -> int:
    """Where the first text edoc does not write stands among ``elements`` (aligned with
    _SHAPE as far as they match it), or -1: non-whitespace text outside the digests, the
    value and the certificate, or in a tail (the signature's own tail lies outside it)."""
    for index, (element, holds_text) in enumerate(zip(elements, _HOLDS_TEXT, strict=False)):
        text, tail = element.text, element.tail
        if (text and not holds_text and text.strip()) or (index and tail and tail.strip()):
            return index
    return -1


def _check_shape(signature: etree._Element) -> None:
    """Element for element what edoc writes, attributes only where it writes them, text
    only where it writes text. SignedInfo of another shape would be signed bytes no
    verifier of ours looks at; anything more after it is not signed at all and would
    ride along to the recipient."""
    elements = list(signature.iter())
    shape = [(e.tag, e.keys()) for e in elements]
    if shape[1:_VALUE_AT] != _SHAPE[1:_VALUE_AT] or elements[_VALUE_AT] is not signature[1]:
        raise errors.WrappedSignature("SignedInfo is not the shape edoc signs")
    stray = _first_stray_text(elements)
    if 1 <= stray < _VALUE_AT:
        raise errors.WrappedSignature("SignedInfo carries text outside its digests")
    if shape != _SHAPE:
        if len(signature.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", DSNS)) != 1:
            # none, two, or a key value instead: not what the signer is known by
            raise errors.UntrustedCertificate("KeyInfo must carry exactly the signer's certificate")
        raise errors.UnsignedContent("a signature holds more than its value and certificate")
    if stray >= 0:
        raise errors.UnsignedContent("a signature carries text edoc never writes")


def base64_bytes(text: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None


_DS_ELEMENTS = etree.XPath("count(//ds:*)", namespaces=DSNS)
_HOP = [f"{{{envelope.NS}}}OrganId", f"{{{envelope.NS}}}Timestamp"]


def check_relay_hops(origin: etree._Element, business: etree._Element) -> None:
    """The hops a relay adds after the signed origin are not signed: each may hold its
    OrganId and Timestamp text and nothing else (no attribute, element or text)."""
    trace = origin.getparent()
    assert trace is not None  # the origin is TraceHeaderList's first hop (signing checked)
    if (trace.text or "").strip() or any((hop.tail or "").strip() for hop in trace):
        raise errors.UnsignedContent("TraceHeaderList carries text")
    for hop in trace:
        if hop is origin or hop is business:
            continue  # signed: the digests cover them
        if (
            hop.tag != f"{{{envelope.NS}}}TraceHeader"
            or hop.keys()
            or (hop.text or "").strip()
            or [field.tag for field in hop] != _HOP
            or any(len(field) or field.keys() or (field.tail or "").strip() for field in hop)
        ):
            raise errors.UnsignedContent("a hop holds more than its OrganId and Timestamp")


def check_nothing_elsewhere(root: etree._Element, signatures: int) -> None:
    """No element of the signature namespace outside the ``signatures`` (each pinned by
    check_structure to len(SIGNATURE) elements): a ds:Object in a hop, the body or the
    attachments would ride along as surely as one beside the signatures."""
    if _DS_ELEMENTS(root) != signatures * len(SIGNATURE):
        raise errors.UnsignedContent("an XML-signature element outside the signatures")
