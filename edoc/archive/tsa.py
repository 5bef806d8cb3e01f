"""The simulated time-stamping authority: RFC 3161 tokens, made and checked.

A token is CMS SignedData (RFC 5652) over a TSTInfo that binds a SHA-256 digest to the
authority's clock, signed by the key of the CA's TSA certificate (``edoc keys tsa``:
extended key usage timeStamping alone, critical). The ASN.1 structures are asn1crypto's
``tsp`` and ``cms``; the RSA arithmetic is cryptography's. ``openssl ts -verify``
accepts what :func:`stamp` makes (tests/archive/test_tsa.py).

:func:`respond` speaks the protocol (TimeStampReq in, TimeStampResp out) for a service
that wants to offer it; edoc's own callers use :func:`stamp` and :func:`check_token`.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from edoc import certcheck, errors, pki
from edoc.keyindex import SigningIdentity

POLICY = "1.3.6.1.4.1.61102.2.1"  # the simulated authority's time-stamp policy
DIGEST_SIZE = 32  # SHA-256


@dataclass(frozen=True)
class Stamp:
    """What a checked token proves: ``digest`` existed at ``time`` (by ``authority``)."""

    digest: bytes
    time: dt.datetime
    serial: int
    authority: x509.Certificate


def _tst_info(digest: bytes, now: dt.datetime, nonce: int | None) -> tsp.TSTInfo:
    fields = {
        "version": "v1",
        "policy": POLICY,
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": digest},
        "serial_number": x509.random_serial_number(),
        "gen_time": now.astimezone(dt.UTC).replace(microsecond=0),
        "accuracy": {"seconds": 1},
    }
    if nonce is not None:
        fields["nonce"] = nonce
    return tsp.TSTInfo(fields)


# --- making a token ----------------------------------------------------------------------
# Only the TSTInfo, its digest and the signature change from one token to the next. The
# rest (certificates, signer identifier, algorithms, two of the three signed attributes)
# is encoded once per authority by asn1crypto and the token assembled from DER pieces:
# building the whole SignedData in asn1crypto took ~40 ms a token, spent re-encoding the
# certificates and the signing-certificate attribute each time.
def _tlv(tag: int, contents: bytes) -> bytes:
    """One DER value: ``tag`` (a single identifier octet) and its definite length."""
    size = len(contents)
    if size < 0x80:
        return bytes((tag, size)) + contents
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(octets))) + octets + contents


_SEQUENCE, _SET, _OCTET_STRING, _CONTEXT_0 = 0x30, 0x31, 0x04, 0xA0


def _set_of(encodings: Sequence[bytes], tag: int = _SET) -> bytes:
    """A DER SET OF: its members sorted by their encodings (X.690 11.6), as asn1crypto."""
    return _tlv(tag, b"".join(sorted(encodings)))


@dataclass(frozen=True)
class _Constant:
    """The DER pieces of a token that depend on the authority and chain alone."""

    certificates: bytes  # [0] IMPLICIT CertificateSet: the authority's and its chain's
    signer_head: bytes  # SignerInfo's version, sid and digestAlgorithm
    attributes: tuple[bytes, ...]  # the content-type and signing-certificate-v2 attributes
    signature_algorithm: bytes


@functools.lru_cache(maxsize=16)
def _constant(certificate: bytes, chain: tuple[bytes, ...]) -> _Constant:
    parsed = asn1_x509.Certificate.load(certificate)
    sid = cms.SignerIdentifier(
        {
            "issuer_and_serial_number": {
                "issuer": parsed.issuer,
                "serial_number": parsed.serial_number,
            }
        }
    )
    # RFC 3161 §2.4.2 and RFC 5816: the content type, and the signer's certificate by hash
    certificate_id = {"cert_hash": hashlib.sha256(certificate).digest()}
    attributes = (
        cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}).dump(),
        cms.CMSAttribute(
            {"type": "signing_certificate_v2", "values": [{"certs": [certificate_id]}]}
        ).dump(),
    )
    return _Constant(
        certificates=_set_of((certificate, *chain), tag=_CONTEXT_0),
        signer_head=core.Integer(1).dump()
        + sid.dump()
        + cms.DigestAlgorithm({"algorithm": "sha256"}).dump(),
        attributes=attributes,
        signature_algorithm=cms.SignedDigestAlgorithm({"algorithm": "sha256_rsa"}).dump(),
    )


_SIGNED_DATA_HEAD = core.Integer(3).dump() + _set_of(
    [cms.DigestAlgorithm({"algorithm": "sha256"}).dump()]
)
_SIGNED_DATA_TYPE = cms.ContentType("signed_data").dump()
_TST_INFO_TYPE = cms.ContentType("tst_info").dump()


def _signer_info(authority: SigningIdentity, constant: _Constant, content: bytes) -> bytes:
    """The SignerInfo over ``content`` (the TSTInfo's DER), its signed attributes the
    constant two and the content's message digest."""
    digest = cms.CMSAttribute(
        {"type": "message_digest", "values": [hashlib.sha256(content).digest()]}
    ).dump()
    attributes = _set_of((*constant.attributes, digest))  # signed with the SET tag (§5.4)
    signature = authority.key.sign(attributes, padding.PKCS1v15(), hashes.SHA256())
    return _tlv(
        _SEQUENCE,
        constant.signer_head
        + bytes((_CONTEXT_0,))
        + attributes[1:]  # in the token: [0] IMPLICIT
        + constant.signature_algorithm
        + _tlv(_OCTET_STRING, signature),
    )


def stamp(
    authority: SigningIdentity,
    digest: bytes,
    now: dt.datetime,
    chain: Sequence[x509.Certificate] = (),
    nonce: int | None = None,
) -> bytes:
    """A time-stamp token (DER ContentInfo) over the SHA-256 ``digest`` at ``now``;
    ``chain`` (the issuing CA) rides in the token beside the authority's certificate."""
    if len(digest) != DIGEST_SIZE:
        raise errors.BadTimestamp(f"a SHA-256 digest has {DIGEST_SIZE} bytes, not {len(digest)}")
    constant = _constant(
        authority.cert.public_bytes(serialization.Encoding.DER),
        tuple(c.public_bytes(serialization.Encoding.DER) for c in chain),
    )
    content = _tst_info(digest, now, nonce).dump()
    encapsulated = _tlv(_SEQUENCE, _TST_INFO_TYPE + _tlv(_CONTEXT_0, _tlv(_OCTET_STRING, content)))
    signed_data = _tlv(
        _SEQUENCE,
        _SIGNED_DATA_HEAD
        + encapsulated
        + constant.certificates
        + _set_of([_signer_info(authority, constant, content)]),
    )
    return _tlv(_SEQUENCE, _SIGNED_DATA_TYPE + _tlv(_CONTEXT_0, signed_data))


def respond(authority: SigningIdentity, request: bytes, now: dt.datetime) -> bytes:
    """An RFC 3161 TimeStampResp to a DER TimeStampReq (SHA-256 imprints only)."""
    try:
        asked = tsp.TimeStampReq.load(request)
        algorithm = asked["message_imprint"]["hash_algorithm"]["algorithm"].native
        digest = asked["message_imprint"]["hashed_message"].native
        nonce = asked["nonce"].native
    except (ValueError, TypeError) as exc:
        return _refusal("bad_data_format", f"unreadable request: {exc}")
    if algorithm != "sha256":
        return _refusal("bad_alg", "only SHA-256 imprints are stamped")
    token = cms.ContentInfo.load(stamp(authority, digest, now, nonce=nonce))
    answer = tsp.TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token})
    response: bytes = answer.dump()
    return response


class _TimeStampResp(tsp.TimeStampResp):  # type: ignore[misc]
    """RFC 3161's TimeStampResp, whose token is OPTIONAL (absent from a refusal);
    asn1crypto 1.5 declares it required."""

    _fields = [  # noqa: RUF012 - asn1crypto's declaration, read by its metaclass
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def _refusal(reason: str, text: str) -> bytes:
    status = {"status": "rejection", "status_string": [text], "fail_info": {reason}}
    response: bytes = _TimeStampResp({"status": status}).dump()
    return response


# --- checking a token --------------------------------------------------------------------
@dataclass(frozen=True)
class _Parsed:
    info: tsp.TSTInfo
    content: bytes  # the TSTInfo's DER, as signed
    signer: cms.SignerInfo
    certificates: tuple[x509.Certificate, ...]


def _parse(token: bytes) -> _Parsed:
    try:
        outer = cms.ContentInfo.load(token)
        if outer["content_type"].native != "signed_data":
            raise errors.BadTimestamp("the token is not CMS SignedData")
        signed = outer["content"]
        encapsulated = signed["encap_content_info"]
        if encapsulated["content_type"].native != "tst_info":
            raise errors.BadTimestamp("the token does not carry a TSTInfo")
        info = encapsulated["content"].parsed
        content = encapsulated["content"].contents
        signers = signed["signer_infos"]
        certificates = tuple(
            x509.load_der_x509_certificate(c.chosen.dump()) for c in signed["certificates"]
        )
        info.native  # noqa: B018 - parses every field now, so a malformed one fails here
    except (ValueError, TypeError, KeyError) as exc:
        raise errors.BadTimestamp(f"unreadable time-stamp token: {exc}") from None
    if len(signers) != 1:
        raise errors.BadTimestamp("the token must have exactly one signer")
    return _Parsed(info, content, signers[0], certificates)


def _signer_certificate(parsed: _Parsed) -> x509.Certificate:
    sid = parsed.signer["sid"]
    if sid.name != "issuer_and_serial_number":
        raise errors.BadTimestamp("the token's signer is not named by issuer and serial")
    serial = sid.chosen["serial_number"].native
    issuer = sid.chosen["issuer"].dump()
    for cert in parsed.certificates:
        if cert.serial_number == serial and cert.issuer.public_bytes() == issuer:
            return cert
    raise errors.BadTimestamp("the token does not carry its signer's certificate")


def _attribute(signer: cms.SignerInfo, name: str) -> object:
    values = [a["values"] for a in signer["signed_attrs"] if a["type"].native == name]
    if len(values) != 1 or len(values[0]) != 1:
        raise errors.BadTimestamp(f"the token must have one signed attribute {name}")
    return values[0][0]


def _attributes_der(info: cms.SignerInfo) -> bytes:
    """The signed attributes as signed: their encoding in the token, with the SET tag
    (RFC 5652 §5.4) in place of the implicit [0]."""
    encoded: bytes = info["signed_attrs"].dump()
    return b"\x31" + encoded[1:]


def _check_signature(parsed: _Parsed, cert: x509.Certificate) -> None:
    signer = parsed.signer
    if signer["digest_algorithm"]["algorithm"].native != "sha256":
        raise errors.BadTimestamp("the token's digest algorithm is not SHA-256")
    if signer["signature_algorithm"].signature_algo != "rsassa_pkcs1v15":
        raise errors.BadTimestamp("the token's signature is not RSA PKCS#1 v1.5")
    if _attribute(signer, "content_type").native != "tst_info":  # type: ignore[attr-defined]
        raise errors.BadTimestamp("the signed content type is not TSTInfo")
    digest = _attribute(signer, "message_digest").native  # type: ignore[attr-defined]
    if not hmac.compare_digest(digest, hashlib.sha256(parsed.content).digest()):
        raise errors.BadTimestamp("the token's TSTInfo does not match its signed digest")
    certificate_ids = _attribute(signer, "signing_certificate_v2")["certs"]  # type: ignore[index]
    der = cert.public_bytes(serialization.Encoding.DER)
    if certificate_ids[0]["cert_hash"].native != hashlib.sha256(der).digest():
        raise errors.BadTimestamp("the token's signing-certificate attribute names another")
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise errors.BadTimestamp("the authority's key must be RSA")
    try:
        key.verify(
            signer["signature"].native, _attributes_der(signer), padding.PKCS1v15(), hashes.SHA256()
        )
    except InvalidSignature:
        raise errors.BadTimestamp("the token's signature does not match its content") from None


def _check_authority(
    cert: x509.Certificate,
    root: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    at: dt.datetime,
) -> None:
    """The signer is a time-stamping authority under ``root``, valid when it stamped."""
    issuer = next((ca for ca in intermediates if certcheck.issued_by(cert, ca)), None)
    if issuer is None or not certcheck.issued_by(issuer, root) or not _is_ca(issuer):
        raise errors.UntrustedTimestamp(
            f"the authority's certificate {pki.serial_hex(cert.serial_number)}"
            " does not chain to the root"
        )
    try:
        extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        extended = None
    if (
        extended is None
        or not extended.critical
        or list(extended.value) != [ExtendedKeyUsageOID.TIME_STAMPING]
    ):
        raise errors.UntrustedTimestamp(
            "the token's signer lacks the one critical extended key usage timeStamping"
        )
    for certificate in (cert, issuer):
        if not certificate.not_valid_before_utc <= at <= certificate.not_valid_after_utc:
            raise errors.UntrustedTimestamp(
                f"certificate {pki.serial_hex(certificate.serial_number)}"
                f" was not valid at {at:%Y-%m-%d %H:%M}"
            )


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def check_token(
    token: bytes,
    digest: bytes,
    root: x509.Certificate,
    intermediates: Sequence[x509.Certificate] = (),
) -> Stamp:
    """Check ``token`` stamps ``digest``, is signed by a time-stamping authority that
    chains to ``root`` (through ``intermediates`` or the certificates in the token), and
    return what it proves. Raises BadTimestamp or UntrustedTimestamp, saying why."""
    try:
        return _checked_token(token, digest, root, intermediates)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        # asn1crypto parses a field when it is first read, and cryptography a certificate's
        # extensions: a malformed one (an unknown signature algorithm, an empty signing
        # certificate list) fails where the check reads it
        raise errors.BadTimestamp(f"unreadable time-stamp token: {exc}") from None


def _checked_token(
    token: bytes,
    digest: bytes,
    root: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
) -> Stamp:
    parsed = _parse(token)
    imprint = parsed.info["message_imprint"]
    if imprint["hash_algorithm"]["algorithm"].native != "sha256":
        raise errors.BadTimestamp("the token's imprint is not SHA-256")
    if not hmac.compare_digest(imprint["hashed_message"].native, digest):
        raise errors.BadTimestamp("the token stamps other data than this evidence")
    cert = _signer_certificate(parsed)
    _check_signature(parsed, cert)
    time: dt.datetime = parsed.info["gen_time"].native
    _check_authority(cert, root, (*intermediates, *parsed.certificates), time)
    return Stamp(digest, time, parsed.info["serial_number"].native, cert)
