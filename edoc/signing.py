"""XML Signatures over edXML envelopes: sign, and verify to return only what was signed.

Each signature (W3C XMLDSig, RSA-SHA256, exclusive C14N, SHA-256 digests, the
signer's certificate in KeyInfo) sits in ``edXMLHeader`` after ``TraceHeaderList``
and references, by Id, exactly four parts of the same document:

* ``MessageHeader``   — who sends what to whom;
* the sender's own ``TraceHeader`` — when it was signed;
* ``Bussiness``       — new / revoke / update / replace;
* ``edXMLManifest``   — every attachment's name, size and SHA-256, so a changed byte
  in an attachment breaks verification.

The rest of ``TraceHeaderList`` is not signed, so the hub can append its hop without
touching the sender's signature. The organization's seal comes first; the signer's
personal signature, where the document has one, second, over the same four parts.
Neither covers the other, so they verify independently (also with ``xmlsec1``).

The arithmetic for these four-part signatures (exclusive C14N of each part where it
stands, SHA-256, RSA) is done here with lxml and cryptography: the shape is fixed, and
signxml's general machinery copies and re-parses the document for every reference,
which was a quarter of the hub's CPU. ``xmlsec1`` checks the result independently in
the tests. signxml still makes and checks the address book's enveloped signature.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import hashlib
import hmac
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import dataclass, replace

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.exceptions import InvalidCertificate, InvalidInput
from signxml.exceptions import InvalidSignature as InvalidXmlSignature
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, XMLVerifier

from edoc import envelope, errors, pki
from edoc.envelope import NSMAP as ED_NSMAP
from edoc.keystore import SigningIdentity
from edoc.model import Document, Message, TraceHop

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


def _header(root: etree._Element) -> etree._Element:
    header = root.find("edXML:edXMLEnvelope/edXML:edXMLHeader", ED_NSMAP)
    if header is None:
        raise errors.MissingField("edXMLHeader is missing")
    return header


def sign(
    root: etree._Element, seal: SigningIdentity, personal: SigningIdentity | None = None
) -> etree._Element:
    """A copy of ``root`` with the organization's seal and, if given, a personal signature."""
    signed = deepcopy(root)
    digests = _digests(_signed_elements(signed))  # the same four parts for both signatures
    for identity in (seal, personal):
        if identity is not None:
            _signature(signed, digests, identity)
    return signed


def _ds(tag: str, *children: etree._Element, **attributes: str) -> etree._Element:
    element = etree.Element(f"{{{DS}}}{tag}", attributes, nsmap={"ds": DS})
    element.extend(children)
    return element


def _text(tag: str, value: bytes) -> etree._Element:
    element = _ds(tag)
    element.text = base64.b64encode(value).decode("ascii")
    return element


def _signature(
    root: etree._Element, digests: dict[str, bytes], identity: SigningIdentity
) -> etree._Element:
    """One XMLDSig signature over the four parts, placed where verify expects it.

    Built here rather than by signxml, the mirror of _check_signature: each referenced
    element is canonicalised where it stands, with no copy or re-parse of the document."""
    info = _ds(
        "SignedInfo",
        _ds("CanonicalizationMethod", Algorithm=EXC_C14N),
        _ds("SignatureMethod", Algorithm=RSA_SHA256),
        *(
            _ds(
                "Reference",
                _ds("Transforms", _ds("Transform", Algorithm=EXC_C14N)),
                _ds("DigestMethod", Algorithm=SHA256),
                _text("DigestValue", digests[uri]),
                URI=uri,
            )
            for uri in REFERENCES
        ),
    )
    signature = _ds("Signature", info)
    _header(root).append(signature)  # canonicalised in place, as a verifier will see it
    value = identity.key.sign(_exclusive_c14n(info), padding.PKCS1v15(), hashes.SHA256())
    signature.append(_text("SignatureValue", value))
    certificate = identity.cert.public_bytes(serialization.Encoding.DER)
    signature.append(_ds("KeyInfo", _ds("X509Data", _text("X509Certificate", certificate))))
    return signature


# --- verification ------------------------------------------------------------------------
@dataclass(frozen=True)
class Signatory:
    kind: pki.CertKind
    org_id: str
    name: str  # the certificate's common name: organization or person
    serial: str

    @classmethod
    @functools.lru_cache(maxsize=4096)  # names read from the certificate alone
    def of(cls, cert: x509.Certificate, kind: pki.CertKind) -> Signatory:
        return cls(kind, pki.org_id_of(cert), pki.common_name_of(cert), f"{cert.serial_number:x}")


@dataclass(frozen=True)
class Verified:
    """What the signatures vouch for, built only from the signed parts."""

    message: Message
    signed_at: dt.datetime
    seal: Signatory
    personal: Signatory | None
    relay_hops: tuple[TraceHop, ...]  # hops added after signing (hub); not signed


def _signatures(root: etree._Element) -> list[etree._Element]:
    """The signatures in their one allowed place, refusing any anywhere else, and any
    other element of their namespace beside them (a ds:Object no signature covers)."""
    beside = list(_header(root).iterchildren(f"{{{DS}}}*"))
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


def _algorithm(element: etree._Element | None) -> str:
    return "" if element is None else str(element.get("Algorithm", ""))


def _check_structure(signature: etree._Element) -> x509.Certificate:
    """Exactly the shape edoc signs: refuse extra references, objects, other algorithms."""
    children = [child.tag for child in signature]
    if children != [f"{{{DS}}}{name}" for name in ("SignedInfo", "SignatureValue", "KeyInfo")]:
        raise errors.WrappedSignature("signature must hold SignedInfo, SignatureValue, KeyInfo")
    info = signature.find("ds:SignedInfo", DSNS)
    if _algorithm(info.find("ds:CanonicalizationMethod", DSNS)) != EXC_C14N:
        raise errors.UnsupportedAlgorithm("canonicalization must be exclusive C14N")
    if _algorithm(info.find("ds:SignatureMethod", DSNS)) != RSA_SHA256:
        raise errors.UnsupportedAlgorithm("signature method must be RSA-SHA256")
    references = info.findall("ds:Reference", DSNS)
    if tuple(ref.get("URI") for ref in references) != REFERENCES:
        raise errors.WrappedSignature(f"signature must reference exactly {', '.join(REFERENCES)}")
    for reference in references:
        if _algorithm(reference.find("ds:DigestMethod", DSNS)) != SHA256:
            raise errors.UnsupportedAlgorithm("digest method must be SHA-256")
        transforms = [_algorithm(t) for t in reference.findall("ds:Transforms/ds:Transform", DSNS)]
        if transforms != [EXC_C14N]:
            raise errors.UnsupportedAlgorithm(f"unexpected transforms {transforms}")
    elements = list(signature.iter())  # the one walk the shape checks share
    _check_signed_info_shape(elements, signature)
    certificates = signature.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", DSNS)
    if len(certificates) != 1:
        raise errors.UntrustedCertificate("KeyInfo must carry exactly the signer's certificate")
    _check_nothing_unsigned(elements, signature)
    try:
        return x509.load_der_x509_certificate(_base64(certificates[0].text or ""))
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


def _ds_tags(names: Sequence[str]) -> list[str]:
    return [f"{{{DS}}}{name}" for name in names]


_SIGNED_INFO_TAGS = _ds_tags(SIGNED_INFO)
_UNSIGNED_TAGS = _ds_tags(UNSIGNED_PARTS)
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
_TEXT_HOLDERS = frozenset(_ds_tags(("DigestValue", "SignatureValue", "X509Certificate")))


def _extra(element: etree._Element, tail: bool = True) -> bool:
    """Whether ``element`` holds attributes, text or (``tail``) a tail edoc never writes."""
    return (
        element.keys() != _ATTRIBUTES.get(element.tag, [])
        or (element.tag not in _TEXT_HOLDERS and bool((element.text or "").strip()))
        or (tail and bool((element.tail or "").strip()))
    )


def _check_signed_info_shape(elements: list[etree._Element], signature: etree._Element) -> None:
    """Element for element and attribute for attribute what edoc signs, with text only in
    the digests: anything else would be signed bytes no verifier of ours looks at.
    ``elements`` is the whole signature in document order; SignedInfo comes first."""
    end = 1 + len(SIGNED_INFO)  # where SignatureValue must stand
    info = elements[1:end]
    if [e.tag for e in info] != _SIGNED_INFO_TAGS or elements[end] is not signature[1]:
        raise errors.WrappedSignature("SignedInfo is not the shape edoc signs")
    if any(_extra(element, tail=element is not info[0]) for element in info):
        raise errors.WrappedSignature("SignedInfo carries text or attributes edoc never signs")


def _check_nothing_unsigned(elements: list[etree._Element], signature: etree._Element) -> None:
    """After SignedInfo, exactly the value and the one certificate, text only, no attribute:
    nothing there is signed, so anything more (a forged header in KeyInfo, an element
    after the value's text) would ride along to the recipient unverified."""
    rest = elements[1 + len(SIGNED_INFO) :]
    if [e.tag for e in rest] != _UNSIGNED_TAGS:
        raise errors.UnsignedContent("a signature holds more than its value and certificate")
    if _extra(signature, tail=False) or (signature[0].tail or "").strip():
        raise errors.UnsignedContent("a signature carries text or attributes edoc never writes")
    if any(_extra(element) for element in rest):
        raise errors.UnsignedContent("a signature carries text or attributes edoc never writes")


def _base64(text: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None


# compiled once: compiling them for every message was most of finding the signed parts
_WITH_ID = etree.XPath("//*[@Id]")
_PLACES = {uri: etree.XPath(path, namespaces=ED_NSMAP) for uri, path in SIGNED_PARTS.items()}


def _signed_elements(root: etree._Element) -> dict[str, etree._Element]:
    """Each referenced Id names one element, the one at its proper place (anti-wrapping)."""
    holders: dict[str, list[etree._Element]] = {}
    for element in _WITH_ID(root):
        holders.setdefault(element.get("Id"), []).append(element)
    found = {}
    for uri, place in _PLACES.items():
        named, expected = holders.get(uri[1:], []), place(root)
        if len(named) != 1 or len(expected) != 1 or named[0] is not expected[0]:
            raise errors.WrappedSignature(f"{uri} does not name the expected element")
        found[uri] = expected[0]
    return found


def _exclusive_c14n(element: etree._Element) -> bytes:
    canonical: bytes = etree.tostring(element, method="c14n", exclusive=True, with_comments=False)
    return canonical


def _digests(parts: dict[str, etree._Element]) -> dict[str, bytes]:
    """SHA-256 of each signed part's exclusive C14N, where it stands in the tree."""
    return {uri: hashlib.sha256(_exclusive_c14n(part)).digest() for uri, part in parts.items()}


def _check_signature(
    signature: etree._Element, digests: dict[str, bytes], cert: x509.Certificate
) -> None:
    """Check each reference's digest and the signature value over SignedInfo.

    _check_structure has pinned the shape (these four references, exclusive C14N,
    SHA-256, RSA-SHA256) and _signed_elements where each part is, so what is left is the
    arithmetic, on the tree already parsed (signxml would copy and re-parse the whole
    document for every reference)."""
    info = signature.find("ds:SignedInfo", DSNS)
    assert info is not None  # _check_structure
    for reference in info.findall("ds:Reference", DSNS):
        uri = str(reference.get("URI"))
        digest = digests[uri]
        if not hmac.compare_digest(
            digest, _decoded(reference.findtext("ds:DigestValue", "", DSNS))
        ):
            raise errors.TamperedSignature(f"the digest of {uri} does not match its content")
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise errors.UnsupportedAlgorithm("the signer's key must be RSA")
    value = _decoded(signature.findtext("ds:SignatureValue", "", DSNS))
    try:
        key.verify(value, _exclusive_c14n(info), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise errors.TamperedSignature("the signature value does not match SignedInfo") from None


def _decoded(text: str) -> bytes:
    try:
        return _base64(text)
    except ValueError as exc:
        raise errors.TamperedSignature(f"unreadable base64: {exc}") from None


def verify(
    root: etree._Element, trust: pki.Trust, now: dt.datetime, read: Message | None = None
) -> Verified:
    """Verify every signature on ``root``; return the model of the signed parts only.

    ``read`` is the model envelope.read_package made of this tree, if there is one: it was
    read from the same elements (_signed_elements has checked that each signed part is
    the one element at its place, where envelope reads it), so it is not read again."""
    signatures = _signatures(root)
    parts = _signed_elements(root)
    digests = _digests(parts)  # the same four parts under every signature
    certs = [_check_structure(signature) for signature in signatures]
    if _DS_ELEMENTS(root) != len(signatures) * len(SIGNATURE):
        raise errors.UnsignedContent("an XML-signature element outside the signatures")
    for signature, cert in zip(signatures, certs, strict=True):
        _check_signature(signature, digests, cert)
    message, origin, business, manifest = (parts[uri] for uri in REFERENCES)
    _check_relay_hops(origin, business)
    signed_at = envelope.parse_timestamp(origin.findtext("edXML:Timestamp", "", ED_NSMAP))
    origin_hop = TraceHop(origin.findtext("edXML:OrganId", "", ED_NSMAP), signed_at)
    if read is None:
        model = envelope.message_from_parts(message, business, manifest, (origin_hop,))
    else:
        model = replace(read, trace=(origin_hop,))
    if origin_hop.org_id != model.sender.org_id:
        raise errors.WrongOrganization("the signed origin hop is not the sender's")
    seal, personal = _signatories(model, certs, trust, signed_at, now)
    return Verified(model, signed_at, seal, personal, envelope.trace_from(root)[1:])


_DS_ELEMENTS = etree.XPath("count(//ds:*)", namespaces=DSNS)
_HOP = [f"{{{envelope.NS}}}OrganId", f"{{{envelope.NS}}}Timestamp"]


def _check_relay_hops(origin: etree._Element, business: etree._Element) -> None:
    """The hops a relay adds after the signed origin are not signed: each may hold its
    OrganId and Timestamp text and nothing else (no attribute, element or text)."""
    trace = origin.getparent()
    assert trace is not None  # _signed_elements found the origin in TraceHeaderList
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


def _signatories(
    message: Message,
    certs: Sequence[x509.Certificate],
    trust: pki.Trust,
    signed_at: dt.datetime,
    now: dt.datetime,
) -> tuple[Signatory, Signatory | None]:
    signatories = [Signatory.of(c, pki.check_certificate(c, trust, signed_at, now)) for c in certs]
    for signatory in signatories:
        if signatory.org_id != message.sender.org_id:
            raise errors.WrongOrganization(
                f"signed by a certificate of {signatory.org_id or 'no organization'},"
                f" but the message is from {message.sender.org_id}"
            )
    seal = signatories[0]
    if seal.kind is not pki.CertKind.ORGANIZATION:
        raise errors.WrongKeyUsage("the first signature must be the organization's seal")
    personal = signatories[1] if len(signatories) == 2 else None
    if personal is not None:
        if personal.kind is not pki.CertKind.PERSONAL:
            raise errors.WrongKeyUsage("the second signature must be a personal certificate")
        signer = message.signer if isinstance(message, Document) else None
        if signer is None or signer.full_name != personal.name:
            raise errors.WrongOrganization(
                f"personal signature of {personal.name!r} does not match SignerInfo"
            )
    return seal, personal


def verify_package(package: envelope.Package, trust: pki.Trust, now: dt.datetime) -> Verified:
    """Verify a package read by edoc.envelope, attachments included."""
    verified = verify(package.root, trust, now, package.message)
    envelope.check_attachments(verified.message.attachments, package.received)
    return verified


# --- whole-document signatures (the hub's address book) ------------------------------------
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"


def sign_enveloped(root: etree._Element, seal: SigningIdentity) -> etree._Element:
    """Sign a whole small document (not edXML) with an enveloped signature as its last child."""
    signer = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signed: etree._Element = signer.sign(deepcopy(root), key=seal.key, cert=[seal.cert])
    return signed


def verify_enveloped(
    root: etree._Element, trust: pki.Trust, now: dt.datetime, signer_org: str
) -> etree._Element:
    """Verify :func:`sign_enveloped`'s signature by ``signer_org``; return the signed tree."""
    signature = root.find("ds:Signature", DSNS)
    if signature is None or len(list(root.iter(f"{{{DS}}}Signature"))) != 1:
        raise errors.MissingSignature("the document must carry exactly one signature")
    references = signature.findall("ds:SignedInfo/ds:Reference", DSNS)
    transforms = [_algorithm(t) for t in signature.iterfind(".//ds:Transform", DSNS)]
    if [r.get("URI") for r in references] != [""] or transforms != [ENVELOPED, EXC_C14N]:
        raise errors.WrappedSignature("expected one enveloped reference to the whole document")
    certificates = signature.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", DSNS)
    if len(certificates) != 1:
        raise errors.UntrustedCertificate("KeyInfo must carry exactly the signer's certificate")
    cert = x509.load_der_x509_certificate(_base64(certificates[0].text or ""))
    config = SignatureConfiguration(
        location="./",
        signature_methods=frozenset({SignatureMethod.RSA_SHA256}),
        digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
        verification_time=cert.not_valid_before_utc,
    )
    try:
        result = XMLVerifier().verify(root, x509_cert=cert, expect_config=config)
    except InvalidXmlSignature as exc:
        raise errors.TamperedSignature(f"signature does not match the content: {exc}") from None
    except (InvalidInput, InvalidCertificate) as exc:
        raise errors.WrappedSignature(f"signature refused: {exc}") from None
    if pki.check_certificate(cert, trust, now, now) is not pki.CertKind.ORGANIZATION:
        raise errors.WrongKeyUsage("must be signed with an organization seal")
    if pki.org_id_of(cert) != signer_org:
        raise errors.WrongOrganization(f"signed by {pki.org_id_of(cert)}, not {signer_org}")
    assert not isinstance(result, list)
    signed: etree._Element = result.signed_xml
    return signed
