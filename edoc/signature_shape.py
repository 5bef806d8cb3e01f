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
import functools

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
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

# SignedInfo as edoc writes it, in exclusive C14N, with a slot for each reference's digest:
# a signer fills it in and signs the bytes; a verifier compares the canonical SignedInfo it
# received with the one its own digests fill in, which pins shape, algorithms, URIs and
# digests in one comparison (anything else goes to the element-by-element checks below,
# which say what is wrong).
_METHOD = '<ds:{0} Algorithm="{1}"></ds:{0}>'
_METHOD_CLOSED = '<ds:{0} Algorithm="{1}"/>'  # as lxml writes it where it stands


def _template(method: str, declaration: str) -> tuple[bytes, list[bytes]]:
    """SignedInfo's opening, and each reference's up to its digest."""
    opening = (
        f"<ds:SignedInfo{declaration}>"
        + method.format("CanonicalizationMethod", EXC_C14N)
        + method.format("SignatureMethod", RSA_SHA256)
    ).encode()
    references = [
        (
            f'<ds:Reference URI="{uri}"><ds:Transforms>'
            + method.format("Transform", EXC_C14N)
            + "</ds:Transforms>"
            + method.format("DigestMethod", SHA256)
            + "<ds:DigestValue>"
        ).encode()
        for uri in REFERENCES
    ]
    return opening, references


_CANONICAL = _template(_METHOD, f' xmlns:ds="{DS}"')
_AS_WRITTEN = _template(_METHOD_CLOSED, "")  # inside a Signature that declares ds
_REFERENCE_CLOSE = b"</ds:DigestValue></ds:Reference>"
_SIGNED_INFO_CLOSE = b"</ds:SignedInfo>"


def signed_info(digests: dict[str, bytes], as_written: bool = False) -> bytes:
    """The exclusive C14N of the SignedInfo edoc writes over these four ``digests`` (or,
    ``as_written``, its markup inside the Signature as it stands in a package)."""
    opening, references = _AS_WRITTEN if as_written else _CANONICAL
    pieces = [opening]
    for uri, reference in zip(REFERENCES, references, strict=True):
        pieces += (reference, base64.b64encode(digests[uri]), _REFERENCE_CLOSE)
    pieces.append(_SIGNED_INFO_CLOSE)
    return b"".join(pieces)


def header(root: etree._Element) -> etree._Element:
    """edXMLHeader, where the signatures stand."""
    found = _HEADER(root)
    if not found:
        raise errors.MissingField("edXMLHeader is missing")
    return found[0]  # the first, as find() has it


_HEADER = etree.XPath("edXML:edXMLEnvelope/edXML:edXMLHeader", namespaces=ED_NSMAP)


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


_PARTS = [f"{{{DS}}}{name}" for name in ("SignedInfo", "SignatureValue", "KeyInfo")]


def canonical(element: etree._Element) -> bytes:
    """The exclusive C14N of ``element`` where it stands: what is digested and signed."""
    data: bytes = etree.tostring(element, method="c14n", exclusive=True, with_comments=False)
    return data


def check_structure(
    signature: etree._Element, expected_info: bytes
) -> tuple[x509.Certificate, bool]:
    """Exactly the shape edoc signs, and nothing unsigned in it: refuse extra references,
    objects, other algorithms, anything beside the value and the one certificate; return
    that certificate, and whether SignedInfo is, canonical, exactly ``expected_info``
    (:func:`signed_info` of the verifier's own digests: then its shape, algorithms, URIs
    and digests are all as expected, and only the signature value is left to check)."""
    if [child.tag for child in signature] != _PARTS:
        raise errors.WrappedSignature("signature must hold SignedInfo, SignatureValue, KeyInfo")
    certificate = _as_signed(signature, expected_info)
    if certificate is not None:
        return _certificate(certificate), True
    pinned = canonical(signature[0]) == expected_info
    if not pinned:
        _check_signed_info(signature[0])
    _check_shape(signature)
    return _certificate(signature[2][0][0].text or ""), pinned


_SIGNED_INFO_ALONE = f'<ds:SignedInfo xmlns:ds="{DS}">'.encode()


def _as_signed(signature: etree._Element, expected_info: bytes) -> str | None:
    """The certificate's text, where the walk (_check_signed_info, _check_shape) would
    find nothing wrong and SignedInfo pinned: SignedInfo, in exclusive C14N with its
    comments, exactly ``expected_info`` (every element, attribute and text of it where edoc
    puts them, nothing else in it), and after it the value and the one certificate as
    edoc writes them (no attribute, no child but the next, text only in the value and the
    certificate, whitespace between them, as the walk lets by). Else None, and the walk
    decides (and says what is wrong). One C14N of SignedInfo, and what follows looked at
    where it stands, instead of that walk; the signature's own children are _PARTS
    (check_structure)."""
    if not expected_info.startswith(_SIGNED_INFO_ALONE):
        return None
    info, value, key_info = signature
    if (
        signature.attrib
        or _text_in(signature.text)
        or _text_in(info.tail)
        or _leaf_beyond(value)
        or _wrapper_beyond(key_info)
        or _wrapper_beyond(key_info[0])
        or _leaf_beyond(key_info[0][0])
    ):
        return None
    canonical = etree.tostring(info, method="c14n", exclusive=True, with_comments=True)
    if canonical != expected_info:
        return None
    return key_info[0][0].text or ""


def _text_in(text: str | None) -> bool:
    """Text the walk refuses where it stands (whitespace it lets by)."""
    return bool(text and text.strip())


def _leaf_beyond(element: etree._Element) -> bool:
    """A value or certificate holding more than text, or more than whitespace after it."""
    return bool(len(element) or element.attrib or _text_in(element.tail))


def _wrapper_beyond(element: etree._Element) -> bool:
    """KeyInfo or X509Data holding more than its one child, or any text."""
    return bool(
        len(element) != 1
        or element.attrib
        or _text_in(element.text)
        or _text_in(element.tail)
        or element[0].tag != _NEXT.get(element.tag)
    )


# KeyInfo holds X509Data, which holds X509Certificate
_NEXT = {
    f"{{{DS}}}KeyInfo": f"{{{DS}}}X509Data",
    f"{{{DS}}}X509Data": f"{{{DS}}}X509Certificate",
}


def _check_signed_info(info: etree._Element) -> None:
    """SignedInfo's algorithms and references, one by one, to say which is wrong."""
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


# A certificate is the same whatever message carries it, so one of ordinary size is read
# once; a text longer than any edoc issues (whitespace may pad base64) is read each
# time, so no key the cache holds grows with what a sender writes.
_REMEMBERED_CERTIFICATE = 8 * 1024


def _certificate(text: str) -> x509.Certificate:
    return _remembered(text) if len(text) <= _REMEMBERED_CERTIFICATE else _read_certificate(text)


@functools.lru_cache(maxsize=1024)
def _remembered(text: str) -> x509.Certificate:
    return _read_certificate(text)


def _read_certificate(text: str) -> x509.Certificate:
    """The certificate, with every part the checks read of it parsed now: cryptography
    parses a field when first asked for it, so a malformed issuer or extension would
    otherwise surface as a ValueError deep in the chain check (a crash, not a refusal)."""
    try:
        certificate = x509.load_der_x509_certificate(base64_bytes(text))
        _ = (certificate.issuer, certificate.subject, certificate.serial_number)
        _ = (certificate.not_valid_before_utc, certificate.not_valid_after_utc)
        _ = (certificate.extensions, certificate.public_key())
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise errors.UntrustedCertificate(f"unreadable certificate: {exc}") from None
    return certificate


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
