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

Verification first pins each signature's shape (edoc.signature_shape: exactly what edoc
writes, so nothing unsigned rides in or beside it, nor in a relay's hops), then does the
arithmetic for these four-part signatures (exclusive C14N of each part where it
stands, SHA-256, RSA), here with lxml and cryptography: the shape is fixed, and
signxml's general machinery copies and re-parses the document for every reference,
which was a quarter of the hub's CPU. ``xmlsec1`` checks the result independently in
the tests. signxml still makes and checks the address book's enveloped signature.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import dataclass

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

from edoc import envelope, errors, pki, xmlsafe
from edoc import signature_shape as shape
from edoc.certcheck import ByIdentity, Trust, check_certificate
from edoc.envelope import NSMAP as ED_NSMAP
from edoc.keyindex import SigningIdentity
from edoc.model import Document, Message, TraceHop, with_trace
from edoc.signature_shape import (
    DS,
    DSNS,
    EXC_C14N,
    REFERENCES,
    RSA_SHA256,
    SHA256,
    SIGNED_PARTS,
)

__all__ = [  # the XMLDSig names callers knew here stay here
    "DS",
    "DSNS",
    "ENVELOPED",
    "EXC_C14N",
    "REFERENCES",
    "RSA_SHA256",
    "SHA256",
    "SIGNED_PARTS",
    "Signatory",
    "Verified",
    "check_seal",
    "sign",
    "sign_enveloped",
    "sign_message",
    "verify",
    "verify_enveloped",
    "verify_package",
]


def sign(
    root: etree._Element, seal: SigningIdentity, personal: SigningIdentity | None = None
) -> etree._Element:
    """A copy of ``root`` with the organization's seal and, if given, a personal signature."""
    signed = deepcopy(root)
    digests = _digests(_signed_elements(signed))  # the same four parts for both signatures
    header = shape.header(signed)
    for identity in (seal, personal):
        if identity is not None:
            header.append(_signature(digests, identity))
    return signed


@functools.lru_cache(maxsize=256)  # an identity's certificate goes into every signature it makes
def _key_info(certificate: x509.Certificate) -> bytes:
    der = certificate.public_bytes(serialization.Encoding.DER)
    return (
        b"<ds:KeyInfo><ds:X509Data><ds:X509Certificate>"
        + base64.b64encode(der)
        + b"</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"
    )


_SIGNATURE_OPEN = f'<ds:Signature xmlns:ds="{DS}">'.encode()


def _signature(digests: dict[str, bytes], identity: SigningIdentity) -> etree._Element:
    """One XMLDSig signature over the four parts, for the header, where verify expects it:
    the element read from the bytes a package carries (_signature_markup). In the header
    its SignedInfo canonicalises to the bytes signed (tests/test_fast_paths.py)."""
    return etree.fromstring(_signature_markup(digests, identity))


def sign_message(
    message: Message, seal: SigningIdentity, personal: SigningIdentity | None = None
) -> envelope.SignedEnvelope:
    """The envelope of ``message`` sealed and, if given, signed by ``personal``, checked
    against the schema, ready to be written with its attachments.

    What ``validate(sign(build_envelope(message), ...))`` then ``write_package`` made,
    byte for byte, without the tree: the envelope is written as bytes with each signed
    part's exclusive C14N beside it (edoc.envelope.canonical), so the digests need no
    canonicalisation and the signatures no parsing. The schema still checks what was
    written, parsed back from those bytes."""
    written = envelope.written(message)
    digests = {uri: hashlib.sha256(part).digest() for uri, part in written.parts.items()}
    signatures = [_signature_markup(digests, i) for i in (seal, personal) if i is not None]
    head = b"".join((written.before, *signatures, written.after))
    envelope.validate(xmlsafe.parse_written(head + envelope.PACKAGE_CLOSE))
    return envelope.SignedEnvelope(head=head)


def _signature_markup(digests: dict[str, bytes], identity: SigningIdentity) -> bytes:
    """_signature's element as it stands in a package (lxml's writing of it)."""
    info = shape.signed_info(digests)
    value = identity.key.sign(info, padding.PKCS1v15(), hashes.SHA256())
    return b"".join(
        (
            _SIGNATURE_OPEN,
            shape.signed_info(digests, as_written=True),
            b"<ds:SignatureValue>",
            base64.b64encode(value),
            b"</ds:SignatureValue>",
            _key_info(identity.cert),
            b"</ds:Signature>",
        )
    )


# --- verification ------------------------------------------------------------------------
@dataclass(frozen=True)
class Signatory:
    kind: pki.CertKind
    org_id: str
    name: str  # the certificate's common name: organization or person
    serial: str

    @classmethod
    def of(cls, cert: x509.Certificate, kind: pki.CertKind) -> Signatory:
        return _signatory(ByIdentity(cert), kind)


@functools.lru_cache(maxsize=4096)  # names read from the certificate alone
def _signatory(key: ByIdentity, kind: pki.CertKind) -> Signatory:
    cert = key.cert
    serial = pki.serial_hex(cert.serial_number)
    return Signatory(kind, pki.org_id_of(cert), pki.common_name_of(cert), serial)


@dataclass(frozen=True)
class Verified:
    """What the signatures vouch for, built only from the signed parts."""

    message: Message
    signed_at: dt.datetime
    seal: Signatory
    personal: Signatory | None
    relay_hops: tuple[TraceHop, ...]  # hops added after signing (hub); not signed


# compiled once: compiling them for every message was most of finding the signed parts
_IDS = etree.XPath("//@Id", smart_strings=False)  # plain strings: only counted
# The four places in one XPath: each place's last step names a tag no other place ends
# in, so what it finds is what the union finds of that tag, in document order.
_PLACES = etree.XPath(" | ".join(SIGNED_PARTS.values()), namespaces=ED_NSMAP)
_TAGS = {
    uri: envelope.q(path.rpartition(":")[2].partition("[")[0]) for uri, path in SIGNED_PARTS.items()
}


def _signed_elements(root: etree._Element) -> dict[str, etree._Element]:
    """Each referenced Id names one element, the one at its proper place (anti-wrapping):
    the one element at the place holds the Id, and nothing else in the document does."""
    ids = _IDS(root)
    at: dict[str, list[etree._Element]] = {}
    for element in _PLACES(root):
        at.setdefault(element.tag, []).append(element)
    found = {}
    for uri, tag in _TAGS.items():
        expected = at.get(tag, [])
        if len(expected) != 1 or expected[0].get("Id") != uri[1:] or ids.count(uri[1:]) != 1:
            raise errors.WrappedSignature(f"{uri} does not name the expected element")
        found[uri] = expected[0]
    return found


def _digests(parts: dict[str, etree._Element]) -> dict[str, bytes]:
    """SHA-256 of each signed part's exclusive C14N, where it stands in the tree."""
    return {uri: hashlib.sha256(shape.canonical(part)).digest() for uri, part in parts.items()}


def _check_signature(
    signature: etree._Element,
    digests: dict[str, bytes],
    cert: x509.Certificate,
    signed_info: bytes | None,
) -> None:
    """Check each reference's digest and the signature value over SignedInfo.

    shape.check_structure has pinned the shape (these four references, exclusive C14N,
    SHA-256, RSA-SHA256) and _signed_elements where each part is, so what is left is the
    arithmetic, on the tree already parsed (signxml would copy and re-parse the whole
    document for every reference). ``signed_info`` is SignedInfo's canonical bytes where
    check_structure found them to be the ones these digests make: nothing is left of
    them to check but the value."""
    if signed_info is None:
        info = signature[0]  # shape.check_structure
        for reference in info.findall("ds:Reference", DSNS):
            uri = str(reference.get("URI"))
            digest = digests[uri]
            if not hmac.compare_digest(
                digest, _decoded(reference.findtext("ds:DigestValue", "", DSNS))
            ):
                raise errors.TamperedSignature(f"the digest of {uri} does not match its content")
        signed_info = shape.canonical(info)
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise errors.UnsupportedAlgorithm("the signer's key must be RSA")
    value = _decoded(signature[1].text or "")  # SignatureValue (shape.check_structure)
    try:
        key.verify(value, signed_info, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise errors.TamperedSignature("the signature value does not match SignedInfo") from None


def _decoded(text: str) -> bytes:
    try:
        return shape.base64_bytes(text)
    except ValueError as exc:
        raise errors.TamperedSignature(f"unreadable base64: {exc}") from None


def verify(
    root: etree._Element, trust: Trust, now: dt.datetime, read: Message | None = None
) -> Verified:
    """Verify every signature on ``root``; return the model of the signed parts only.

    ``read`` is the model envelope.read_package made of this tree, if there is one: it was
    read from the same elements (_signed_elements has checked that each signed part is
    the one element at its place, where envelope reads it; the origin is the first of
    the hops it read), so it is not read again."""
    signatures = shape.signatures(root)
    parts = _signed_elements(root)
    digests = _digests(parts)  # the same four parts under every signature
    expected = shape.signed_info(digests)
    checked = [shape.check_structure(signature, expected) for signature in signatures]
    shape.check_nothing_elsewhere(root, len(signatures))
    for signature, (cert, pinned) in zip(signatures, checked, strict=True):
        _check_signature(signature, digests, cert, expected if pinned else None)
    certs = [cert for cert, _ in checked]
    message, origin, business, manifest = (parts[uri] for uri in REFERENCES)
    shape.check_relay_hops(origin, business)
    if read is not None and read.trace:  # read from these elements: the first is the origin
        origin_hop, hops = read.trace[0], read.trace[1:]
        model = with_trace(read, (origin_hop,))
    else:
        origin_hop, hops = envelope.trace_hop(origin), None
        model = envelope.message_from_parts(message, business, manifest, (origin_hop,))
    if origin_hop.org_id != model.sender.org_id:
        raise errors.WrongOrganization("the signed origin hop is not the sender's")
    signed_at = origin_hop.timestamp
    seal, personal = _signatories(model, certs, trust, signed_at, now)
    if hops is None:
        hops = envelope.trace_from(root)[1:]
    return Verified(model, signed_at, seal, personal, hops)


def _signatories(
    message: Message,
    certs: Sequence[x509.Certificate],
    trust: Trust,
    signed_at: dt.datetime,
    now: dt.datetime,
) -> tuple[Signatory, Signatory | None]:
    signatories = [Signatory.of(c, check_certificate(c, trust, signed_at, now)) for c in certs]
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


def verify_package(package: envelope.Package, trust: Trust, now: dt.datetime) -> Verified:
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
    root: etree._Element, trust: Trust, now: dt.datetime, signer_org: str
) -> tuple[etree._Element, x509.Certificate]:
    """Verify :func:`sign_enveloped`'s signature by ``signer_org``; return the signed tree
    and the certificate that signed it (what :func:`check_seal` judges again later)."""
    signature = root.find("ds:Signature", DSNS)
    if signature is None or len(list(root.iter(f"{{{DS}}}Signature"))) != 1:
        raise errors.MissingSignature("the document must carry exactly one signature")
    references = signature.findall("ds:SignedInfo/ds:Reference", DSNS)
    transforms = [shape.algorithm(t) for t in signature.iterfind(".//ds:Transform", DSNS)]
    if [r.get("URI") for r in references] != [""] or transforms != [ENVELOPED, EXC_C14N]:
        raise errors.WrappedSignature("expected one enveloped reference to the whole document")
    certificates = signature.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", DSNS)
    if len(certificates) != 1:
        raise errors.UntrustedCertificate("KeyInfo must carry exactly the signer's certificate")
    cert = x509.load_der_x509_certificate(shape.base64_bytes(certificates[0].text or ""))
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
    check_seal(cert, trust, now, signer_org)
    assert not isinstance(result, list)
    signed: etree._Element = result.signed_xml
    return signed, cert


def check_seal(cert: x509.Certificate, trust: Trust, now: dt.datetime, signer_org: str) -> None:
    """That ``cert`` is a seal of ``signer_org`` that ``trust`` takes at ``now``: of what
    :func:`verify_enveloped` establishes, all that can change after it (the trust's CRL,
    CAs and rotated-out serials, and the clock), so a signature verified once is judged
    again by this alone."""
    if check_certificate(cert, trust, now, now) is not pki.CertKind.ORGANIZATION:
        raise errors.WrongKeyUsage("must be signed with an organization seal")
    if pki.org_id_of(cert) != signer_org:
        raise errors.WrongOrganization(f"signed by {pki.org_id_of(cert)}, not {signer_org}")
